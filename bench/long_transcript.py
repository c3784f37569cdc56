#!/usr/bin/env python
"""A transcript four times longer than the model can read: map-reduce wall time and context safety.

    python bench/long_transcript.py            # four meetings (~60,000 words), 1 s a call
    python bench/long_transcript.py --small    # ~20,000 words, 0.2 s a call (seconds; CI)

Four of the shared QMSum meetings joined, every request capped at 16,000 tokens
(MAX_PROMPT_TOKENS) and the emulator (a subprocess) rejecting anything longer,
counting tokens as characters/4 like the independent checker. Each provider runs
the seed's two tasks in-process through analysis.analyze (the worker's code path
without the queue). Measured against one call's latency in the same run:

- wall time of the whole analysis; bound: <= 3x one call (a concurrent map round,
  then the reduce, plus overhead),
- the sum of all calls' latencies, i.e. the time the same calls take one by one,
- requests over the context: must be 0, and the largest prompt the emulator saw.

Uses the bench database (`scriptripper_bench`, created and migrated) and Redis db 12.
`run(small)` returns the figures as a dict (bench/run.py may call it).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common  # noqa: E402

CAP_TOKENS = 16_000
BOUND = 3.0
FULL = ("Bed015.txt", "covid_2.txt", "education_0.txt", "Bro011.txt")  # ~62,000 words (QMSum counts)
SMALL = ("TS3010a.txt", "ES2009b.txt", "IS1006b.txt", "Bro011.txt")  # ~20,000 words
MODELS = (("openai", "gpt-4o-mini"), ("anthropic", "claude-haiku-4-5"), ("gemini", "gemini-2.5-flash"))
TASKS = {"summary": "Provide a brief summary", "key_points": "Extract key points"}


def _configure(emulator_url: str) -> None:
    """Point this process at the bench database and the emulator, whether or not Django is set up yet."""
    from django.apps import apps

    if not apps.ready:
        common.setup_django(emulator_url, MAX_PROMPT_TOKENS=str(CAP_TOKENS))
    from django.conf import settings

    from analysis.clients import reset_provider_clients

    settings.MAX_PROMPT_TOKENS = CAP_TOKENS
    settings.MODEL_CONTEXT_OVERRIDES_RAW = ""
    for key in ("GEMINI_API_KEY", "OPENAI_API_KEY", "ANTHROPIC_API_KEY"):
        setattr(settings, key, getattr(settings, key) or "bench")
    settings.OPENAI_BASE_URL = f"{emulator_url}/v1"
    settings.ANTHROPIC_BASE_URL = emulator_url
    settings.GEMINI_BASE_URL = emulator_url
    settings.GEMINI_API_VERSION = "v1beta"
    reset_provider_clients()


def _one_call_latency(provider: str, model: str) -> float:
    """Wall time of one ordinary request (a short transcript, one task): the baseline."""
    from analysis.analyze import analyze_transcript_task

    best = float("inf")
    for _ in range(2):
        t0 = time.monotonic()
        analyze_transcript_task("Alice: We ship on Friday.", provider, model, None, {"summary": "Summarize"})
        best = min(best, time.monotonic() - t0)
    return best


def run(small: bool = False) -> dict:
    from analysis.engine.transcripts import normalize_transcript

    latency = 0.2 if small else 1.0
    names = SMALL if small else FULL
    raw = "\n".join((common.TRANSCRIPTS / name).read_text(encoding="utf-8") for name in names)
    text = normalize_transcript(raw)
    figures: dict = {
        "case": "long_transcript", "small": small, "transcripts": list(names), "words": len(text.split()),
        "characters": len(text), "chars_over_4_tokens": (len(text) + 3) // 4, "cap_tokens": CAP_TOKENS,
        "emulator_latency_s": latency, "bound_wall_over_one_call": BOUND, "tasks": list(TASKS), "providers": {},
    }
    with common.emulator_process(latency=latency, max_context=CAP_TOKENS) as emulator:
        _configure(emulator.url)
        from analysis.analyze import analyze_transcript_task

        for provider, model in (MODELS[:1] if small else MODELS):
            one_call = _one_call_latency(provider, model)
            emulator.reset()
            emulator.configure(max_recorded=0, latency=latency, max_context=CAP_TOKENS)
            t0 = time.monotonic()
            result = analyze_transcript_task(text, provider, model, None, dict(TASKS))
            wall = time.monotonic() - t0
            stats = emulator.stats()
            tasks = result["metadata"]["tasks"]
            calls = sum(t["calls"] for t in tasks.values())
            figures["providers"][f"{provider}/{model}"] = {
                "wall_s": round(wall, 3),
                "one_call_s": round(one_call, 3),
                "wall_over_one_call": round(wall / one_call, 2),
                "ok": wall / one_call <= BOUND and stats["rejected_over_context"] == 0 and not result["errors"],
                # The same calls one after another: each takes at least one call's latency.
                "sequential_s": round(calls * one_call, 3),
                "speedup_vs_sequential": round(calls * one_call / wall, 1),
                "requests": stats["requests"],
                "calls": calls,
                "chunks": {name: t["chunks"] for name, t in tasks.items()},
                "calls_per_task": {name: t["calls"] for name, t in tasks.items()},
                "requests_over_context": stats["rejected_over_context"],
                "max_prompt_tokens_seen": stats["max_prompt_tokens_seen"],
                "total_cost_usd": result["metadata"]["total_cost"],
                "errors": result["errors"],
            }
    return common.provider_rows(figures, "long transcript", BOUND, lambda name, p: {
        "measure": f"{name}: wall time, {figures['words']:,} words at a {CAP_TOKENS:,}-token cap",
        "value": p["wall_s"], "baseline": p["one_call_s"], "ratio": p["wall_over_one_call"],
        "notes": f"{p['calls']} calls, {p['requests_over_context']} over the context; one by one they take {p['sequential_s']} s",
    })


if __name__ == "__main__":
    sys.exit(common.module_main(run, __doc__, "~20,000 words and 0.2 s a call"))
