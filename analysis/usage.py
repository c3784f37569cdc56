"""Token usage, normalized across providers.

Every provider reports usage differently (see analysis/providers/*). By the time
usage leaves a provider module it is a `Usage`, whose fields never overlap: each
token is counted once, under the rate it is billed at.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0  # input billed at the full rate (no cache reads, no cache writes)
    cached_input_tokens: int = 0  # cache reads
    cache_write_tokens: int = 0  # cache creation (Anthropic)
    output_tokens: int = 0  # visible output, without reasoning
    reasoning_tokens: int = 0  # thinking / reasoning output

    def __add__(self, other: Usage) -> Usage:
        return Usage(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})

    @property
    def prompt_tokens(self) -> int:
        """Everything the model read, whatever rate it was billed at."""
        return self.input_tokens + self.cached_input_tokens + self.cache_write_tokens

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict | None) -> Usage:
        data = data or {}
        return cls(**{f.name: int(data.get(f.name) or 0) for f in fields(cls)})


USAGE_KEYS: tuple[str, ...] = tuple(f.name for f in fields(Usage))
