"""Run the provider emulator until killed.

    python -m emulator --host 127.0.0.1 --port 8765 [--latency 0.5] [--max-context N]

Point the app at it with OPENAI_BASE_URL=http://HOST:PORT/v1,
ANTHROPIC_BASE_URL=http://HOST:PORT and GEMINI_BASE_URL=http://HOST:PORT, and drive it
over HTTP (/_emulator/config, /_emulator/faults, ...) or with EmulatorClient.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from typing import Any

from emulator.server import Emulator


def _cached(value: str) -> Any:
    # "auto", a token count ("2048") or a fraction ("0.5").
    if value == "auto":
        return value
    return float(value) if "." in value else int(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emulator", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every answer")
    parser.add_argument("--max-context", type=int, default=None,
                        help="prompt-token cap for every model (default: none)")
    parser.add_argument("--max-context-per-model", default=None, metavar="JSON",
                        help='per-model caps, e.g. \'{"llama3": 8192}\'')
    parser.add_argument("--cached-tokens", type=_cached, default=0,
                        help="cache reads to report: tokens, a fraction, or 'auto'")
    parser.add_argument("--reasoning-tokens", type=int, default=0)
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = parser.parse_args(argv)

    extra: dict[str, Any] = {"cached_tokens": args.cached_tokens,
                             "reasoning_tokens": args.reasoning_tokens,
                             "verbose": args.verbose}
    if args.max_context_per_model:
        extra["max_context_per_model"] = json.loads(args.max_context_per_model)
    emu = Emulator(host=args.host, port=args.port, latency=args.latency,
                   max_context=args.max_context, **extra)

    # SIGTERM (docker stop, a test's proc.terminate()) should exit cleanly, like Ctrl-C;
    # SIGINT is set explicitly because a shell's background job inherits it ignored.
    def _terminate(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, _terminate)
    emu.start()
    print(f"emulator listening on {emu.url}", flush=True)
    try:
        signal.pause() if hasattr(signal, "pause") else emu._thread.join()  # type: ignore[union-attr]
    except KeyboardInterrupt:
        pass
    finally:
        emu.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
