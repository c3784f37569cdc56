#!/usr/bin/env python
"""meeting-notes on the longest shared transcript: structured (schemas, numbered turns, checked citations)
against the same profile's free-text wording.

    python bench/structured_output.py            # covid_2 (the longest shared transcript), 0.5 s a call
    python bench/structured_output.py --small    # TS3010a, 0.1 s a call (seconds; CI)

Both variants run in-process through analysis.analyze.run_analysis (the worker's code path without the
queue) against the emulator (a subprocess), with the built-in profile's tasks as the migrations define
them (analysis 0002 and 0004). Measured: the total cost (input tokens dominate: the turn prefixes and the
schemas are the structured variant's extra input; the emulator's answers are synthetic, so output
lengths say nothing about a real model's) and the wall time. Bound: structured <= 1.2x free text in cost.

`run(small)` returns the figures as a dict (bench/run.py may call it).
"""

from __future__ import annotations

import sys
import time
from importlib import import_module
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common  # noqa: E402

BOUND = 1.2
FULL, SMALL = "covid_2.txt", "TS3010a.txt"
PROVIDER, MODEL = "openai", "gpt-4o-mini"


def _tasks(structured: bool):
    from analysis.engine.planning import TaskSpec
    from analysis.engine.structured import TaskRequest, encode_task

    builtin = next(p for p in import_module("analysis.migrations.0002_builtin_profiles").BUILTIN_PROFILES
                   if p["name"] == "meeting-notes")
    schemas = import_module("analysis.migrations.0004_structured_builtin_profiles").STRUCTURED["meeting-notes"]
    specs = []
    for task in builtin["tasks"]:
        if structured and task["name"] in schemas:
            prompt, schema = schemas[task["name"]]
            specs.append(TaskSpec(name=task["name"], prompt=encode_task(TaskRequest(prompt=prompt, schema=schema))))
        else:
            specs.append(TaskSpec(name=task["name"], prompt=task["prompt"]))
    return builtin["system_prompt"], specs


def _configure(emulator_url: str) -> None:
    """Django settings pointed at the emulator. No database: nothing here reads or writes one (the bench
    database is shared by checkouts that may not have this one's migrations)."""
    import os

    from django.apps import apps

    if not apps.ready:
        os.environ.update(common.base_env(emulator_url))
        import django

        django.setup()
    from django.conf import settings

    from analysis.clients import reset_provider_clients

    settings.MAX_PROMPT_TOKENS = 0  # the model's own context: one call a task
    settings.OPENAI_API_KEY = settings.OPENAI_API_KEY or "bench"
    settings.OPENAI_BASE_URL = f"{emulator_url}/v1"
    reset_provider_clients()


def run(small: bool = False) -> dict:
    latency = 0.1 if small else 0.5
    name = SMALL if small else FULL
    figures: dict = {"case": "structured_output", "small": small, "transcript": name, "model": f"{PROVIDER}/{MODEL}",
                     "emulator_latency_s": latency, "bound_cost_ratio": BOUND, "variants": {}}
    with common.emulator_process(latency=latency) as emulator:
        _configure(emulator.url)
        from analysis.analyze import result_document, run_analysis, run_config
        from analysis.engine.transcripts import normalize_transcript

        text = normalize_transcript((common.TRANSCRIPTS / name).read_text(encoding="utf-8"))
        # One call first, so that neither variant pays for the client's first connection.
        run_analysis(transcript="Alice: hello there.", config=run_config(provider=PROVIDER, model=MODEL),
                     tasks=_tasks(False)[1][:1])
        for variant, structured in (("free text", False), ("structured", True)):
            system, specs = _tasks(structured)
            config = run_config(provider=PROVIDER, model=MODEL, system_prompt=system)
            emulator.reset()
            emulator.configure(max_recorded=0, latency=latency)
            t0 = time.monotonic()
            outcomes = run_analysis(transcript=text, config=config, tasks=specs)
            wall = time.monotonic() - t0
            doc = result_document(config=config, outcomes=outcomes)
            figures["variants"][variant] = {
                "wall_s": round(wall, 3), "total_cost_usd": doc["metadata"]["total_cost"],
                "input_tokens": doc["metadata"]["usage"]["input_tokens"],
                "cached_input_tokens": doc["metadata"]["usage"]["cached_input_tokens"],
                "output_tokens": doc["metadata"]["usage"]["output_tokens"],
                "calls": sum(t["calls"] for t in doc["metadata"]["tasks"].values()), "errors": doc["errors"],
            }
    free, structured = figures["variants"]["free text"], figures["variants"]["structured"]
    ratio = structured["total_cost_usd"] / free["total_cost_usd"] if free["total_cost_usd"] else 0.0
    figures["cost_ratio"] = round(ratio, 3)
    figures["input_ratio"] = round(structured["input_tokens"] / max(1, free["input_tokens"]), 3)
    figures["ok"] = ratio <= BOUND and not free["errors"] and not structured["errors"]
    figures["rows"] = [
        {"case": "structured output", "measure": f"meeting-notes on {name}: cost, structured vs free text",
         "value": structured["total_cost_usd"], "baseline": free["total_cost_usd"], "ratio": figures["cost_ratio"],
         "bound": f"≤ {BOUND}", "ok": figures["ok"], "unit": "USD",
         "notes": (f"input tokens x{figures['input_ratio']} (turn numbers, schemas); {structured['calls']} vs "
                   f"{free['calls']} calls; emulator answers, so output lengths are synthetic")},
        {"case": "structured output", "measure": f"meeting-notes on {name}: wall time, structured vs free text",
         "value": structured["wall_s"], "baseline": free["wall_s"],
         "ratio": round(structured["wall_s"] / free["wall_s"], 2) if free["wall_s"] else 0.0,
         "bound": "", "ok": True, "unit": "s", "notes": f"{latency} s a call at the emulator"},
    ]
    return figures


if __name__ == "__main__":
    sys.exit(common.module_main(run, __doc__, "TS3010a and 0.1 s a call"))
