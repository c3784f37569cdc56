"""Provider emulator: a loopback HTTP server speaking the OpenAI, Anthropic and Gemini
wire protocols, for tests and benchmarks that must go through the real SDKs.

    from emulator import Emulator, EmulatorClient, faults
"""

from __future__ import annotations

from emulator.server import (
    DEFAULT_CONFIG,
    FAULT_KINDS,
    PROVIDERS,
    Emulator,
    EmulatorClient,
    EmulatorServer,
    estimate_tokens,
    faults,
)

__all__ = [
    "DEFAULT_CONFIG",
    "Emulator",
    "EmulatorClient",
    "EmulatorServer",
    "FAULT_KINDS",
    "PROVIDERS",
    "estimate_tokens",
    "faults",
]
