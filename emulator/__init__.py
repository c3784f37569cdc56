"""Provider emulator: a loopback HTTP server speaking the OpenAI, Anthropic and Gemini
wire protocols, for tests and benchmarks that must go through the real SDKs.

    from emulator import Emulator, EmulatorClient, faults
"""

from __future__ import annotations

from emulator import server
from emulator.server import *  # noqa: F403  (the package's names are the server's)

__all__ = server.__all__
