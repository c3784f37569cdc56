"""What every wire protocol's request becomes once parsed: a Prompt of role-tagged segments, the
emulator's tokenizer, the usage counts of an answer, and the deterministic answer text itself."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

PROVIDERS = ("openai", "anthropic", "gemini")


def estimate_tokens(chars: int) -> int:
    """The emulator's tokenizer: ceil(chars / 4), the usual rule of thumb."""
    return (chars + 3) // 4


class BadRequest(Exception):
    """The request is malformed for the provider: answered with its 400 body."""


@dataclass
class Segment:
    role: str  # "system", "user", "assistant"
    text: str
    cache_breakpoint: bool = False  # Anthropic cache_control on this block


@dataclass
class Prompt:
    provider: str
    model: str
    segments: list[Segment] = field(default_factory=list)
    max_output: int | None = None

    @property
    def chars(self) -> int:
        return sum(len(s.text) for s in self.segments)

    @property
    def tokens(self) -> int:
        return estimate_tokens(self.chars)

    @cached_property
    def text(self) -> str:
        # Cached: fault matching and the structured answer both read it, and it can be a whole transcript.
        return "\n".join(s.text for s in self.segments)


@dataclass
class Usage:
    prompt: int
    output: int  # visible output tokens
    cached: int = 0
    cache_write: int = 0
    reasoning: int = 0


def required_model(body: dict[str, Any], message: str) -> str:
    """The request body's "model" (OpenAI, Anthropic), or the provider's 400 ``message``."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest(message)
    return model


def chat_messages(body: dict[str, Any], message: str) -> list[Any]:
    """The request body's "messages" (OpenAI, Anthropic): a non-empty list, and no streaming asked."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest(message)
    if body.get("stream"):
        raise BadRequest("the emulator does not stream; call without stream=True")
    return messages


def text_of_content(content: Any, segments: list[Segment], role: str) -> None:
    """Append the text of an OpenAI/Anthropic message content (string or list of blocks)."""
    if content is None:
        return
    if isinstance(content, str):
        segments.append(Segment(role, content))
        return
    if isinstance(content, list):
        for block in content:
            if isinstance(block, str):
                segments.append(Segment(role, block))
            elif isinstance(block, dict):
                text = block.get("text")
                if not isinstance(text, str) and isinstance(block.get("content"), (str, list)):
                    # tool_result blocks nest their content
                    text_of_content(block["content"], segments, role)
                    continue
                segments.append(Segment(role, text if isinstance(text, str) else "",
                                        cache_breakpoint=bool(block.get("cache_control"))))
        return
    raise BadRequest(f"content must be a string or a list of blocks, got {type(content).__name__}")


def compose_answer(prompt: Prompt) -> str:
    """A deterministic answer that proves which prompt arrived.

    It quotes the last line of the last user message (the task instruction, when the
    layout is system / transcript / question) and counts the words of the whole
    prompt, so a test can assert both the question and the size of what was sent.
    """
    user = [s for s in prompt.segments if s.role == "user" and s.text.strip()]
    instruction = ""
    if user:
        lines = [ln.strip() for ln in user[-1].text.splitlines() if ln.strip()]
        instruction = lines[-1] if lines else ""
    n_words = sum(len(s.text.split()) for s in prompt.segments)
    body_words: list[str] = []
    for s in prompt.segments:
        if s.role != "system":
            body_words.extend(s.text.split()[:6 - len(body_words)])
            if len(body_words) >= 6:
                break
    return (f"[emulated {prompt.provider}/{prompt.model}] Answer to: {instruction[:80]!r} "
            f"(read {n_words} words; first words: {' '.join(body_words)!r})")
