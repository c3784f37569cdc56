"""The providers the engine speaks to: their names and labels. Each provider module wraps one SDK; the
clients are built from settings by the app (analysis.clients) and handed to the engine."""

from __future__ import annotations

# The built-in providers, in the order they are listed everywhere, with the names their messages use.
PROVIDER_LABELS = {"gemini": "Gemini", "openai": "OpenAI", "anthropic": "Anthropic"}
PROVIDER_NAMES: tuple[str, ...] = tuple(PROVIDER_LABELS)


def provider_label(name: str) -> str:
    return PROVIDER_LABELS.get(name, name)
