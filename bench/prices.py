#!/usr/bin/env python
"""Price lookup: what pricing one provider call costs, against genai-prices' own calc_price.

    python bench/prices.py            # 50,000 calls a round, medians of 5 rounds
    python bench/prices.py --small    # 2,000 calls a round (CI)

ScriptRipper prices a call with rates it precomputed from genai-prices' data at start-up
(analysis.engine.pricing.cost_of: choose the dated price and the long-prompt tier, five multiplications); the
baseline is calc_price on the same usage (mapped to the library's totals), which walks its unit registry on
every call. Bound: cost_of must stay under 200 µs a call (the issue's), and be no slower than calc_price.
Pure computation: no database, Redis or emulator.
"""

from __future__ import annotations

import datetime as dt
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

BOUND_US = 200.0
MODEL = ("openai", "gpt-5.6-sol")  # dated prices (a change on 2026-08-21) and a 272k tier: the most work


def _per_call(fn, n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - started) / n * 1e6


def run(small: bool = False) -> dict:
    from genai_prices import calc_price

    from analysis.engine.catalogue import get_model
    from analysis.engine.catalogue_sources import LIBRARY_PROVIDER
    from analysis.engine.pricing import cost_of, library_usage
    from analysis.engine.providers.usage import Usage

    provider, name = MODEL
    info = get_model(provider, name)
    assert info is not None
    usage = Usage(input_tokens=8_000, cached_input_tokens=12_000, output_tokens=500, reasoning_tokens=1_000)
    at = dt.datetime.now(dt.UTC)
    ours = lambda: cost_of(info, usage)  # noqa: E731
    theirs = lambda: calc_price(library_usage(usage), name, provider_id=LIBRARY_PROVIDER[provider],  # noqa: E731
                                genai_request_timestamp=at)
    n = 2_000 if small else 50_000
    ours(), theirs()  # warm both
    rounds = 2 if small else 5
    ours_us = statistics.median(_per_call(ours, n) for _ in range(rounds))
    theirs_us = statistics.median(_per_call(theirs, max(n // 10, 200)) for _ in range(rounds))
    ratio = ours_us / theirs_us
    return {"rows": [{
        "case": "price lookup", "measure": f"µs to price one {name} call (cost_of) vs genai-prices calc_price",
        "value": ours_us, "baseline": theirs_us, "ratio": ratio, "bound": f"< {BOUND_US:.0f} µs, ≤ 1.0",
        "ok": ours_us < BOUND_US and ratio <= 1.0, "unit": "µs",
        "notes": "rates precomputed from genai-prices at start-up; calc_price walks its unit registry per call",
    }]}


if __name__ == "__main__":
    for row in run(small="--small" in sys.argv)["rows"]:
        print(f"{row['measure']}: {row['value']:.2f} µs vs {row['baseline']:.2f} µs ({row['ratio']:.2f}) "
              f"{'ok' if row['ok'] else 'MISSED'}")
