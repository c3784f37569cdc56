#!/usr/bin/env python3
"""Round trip against a running ScriptRipper: submit a transcript, poll, print the results.

    TOKEN=... scripts/demo.py [FILE] [--provider gemini] [--model gemini-2.5-flash] [--url http://localhost:8000]

From another shell than scripts/run.sh's, `source .data/demo.env` first: it sets TOKEN and
SCRIPTRIPPER_URL (the default of --url).

Standard library only, so it runs with any Python 3.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def call(method: str, url: str, token: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read(), parse_float=Decimal)
    except urllib.error.HTTPError as exc:
        sys.exit(f"{method} {url}: {exc.code} {exc.read().decode(errors='replace')}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("file", nargs="?", default=str(ROOT / "docs" / "sample-meeting.txt"))
    parser.add_argument("--provider", default="gemini")
    parser.add_argument("--model", default="gemini-2.5-flash")
    parser.add_argument("--url", default=os.environ.get("SCRIPTRIPPER_URL", "http://localhost:8000"))
    args = parser.parse_args()
    token = os.environ.get("TOKEN") or sys.exit("set TOKEN (scripts/run.sh prints it), or `source .data/demo.env`")
    body = {
        "transcript": Path(args.file).read_text(encoding="utf-8"),
        "provider": args.provider,
        "model": args.model,
        "tasks": {
            "summary": "Provide a brief summary",
            "key_points": "Extract key points",
            "action_items": "List the action items with their owners and due dates",
        },
    }
    job = call("POST", f"{args.url}/api/v1/jobs/analyze", token, body)
    print(f"submitted job {job['job_id']}")
    while True:
        state = call("GET", f"{args.url}/api/v1/jobs/{job['job_id']}", token)
        done, total = state["progress"]["tasks_done"], state["progress"]["tasks_total"]
        print(f"  {state['status']:<9} {done}/{total} tasks", flush=True)
        if state["status"] in ("finished", "failed", "canceled"):
            break
        time.sleep(1)
    result = state["result"] or {}
    metadata = result.get("metadata") or {}
    tasks = metadata.get("tasks") or {}
    reused = [name for name, task in tasks.items() if task.get("reused")]
    for name, text in (result.get("results") or {}).items():
        note = " (reused from an earlier identical task: no provider call, $0)" if name in reused else ""
        print(f"\n## {name}{note}\n\n{text}")
    for name, message in (result.get("errors") or {}).items():
        print(f"\n## {name} (failed)\n\n{message}")
    usage = ", ".join(f"{kind.removesuffix('_tokens').replace('_', ' ')} {count:,}"
                      for kind, count in (metadata.get("usage") or {}).items() if count)
    # The exact bill, as the API gives it (a JSON number read as a Decimal: no float rounding).
    print(f"\nprovider {metadata.get('provider')}, model {metadata.get('model')}, "
          f"total cost ${metadata.get('total_cost', 0)}, tokens: {usage or 'none'}")
    if reused:
        print(f"{len(reused)} of {len(tasks)} answers reused from an earlier identical job of yours, at $0 "
              'without a provider call (send "reuse": false to ask the provider again).')
    if "[emulated" in json.dumps(result.get("results") or {}):
        print("NOTE: these answers are SYNTHETIC: they come from the local emulator, not a real model.")


if __name__ == "__main__":
    main()
