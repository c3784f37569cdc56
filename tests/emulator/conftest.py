"""The emulator's tests need neither Django settings nor the suite's Redis: the same-named fixtures
below switch off tests/conftest.py's autouse ones for this folder."""

from __future__ import annotations

import pytest


@pytest.fixture
def provider_endpoints() -> None:
    return None


@pytest.fixture
def clean_redis() -> None:
    return None
