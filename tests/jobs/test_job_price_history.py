"""A price change in genai-prices' data applies from its date, in a real job run by a real worker.

gemini-3.7-flash in genai-prices 0.2.3: 0.75 / 0.075 / 3.75 per million tokens (input / cached / output) until
2026-12-31, then 1.50 / 0.15 / 7.50 from 2027-01-01 (UTC). The worker's clocks (the runner's, which prices
the calls, and Django's, which stamps the task) are moved to either side of the change.
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal

import pytest

from tests.conftest import transcript, work_burst

pytestmark = pytest.mark.django_db(transaction=True)


class _Clock:
    def __init__(self, moment: dt.datetime) -> None:
        self.moment = moment

    def install(self, monkeypatch) -> None:
        from django.utils import timezone

        import analysis.engine.runner

        moment = self.moment

        class FrozenDatetime(dt.datetime):
            @classmethod
            def now(cls, tz=None):  # type: ignore[override]
                return moment if tz is None else moment.astimezone(tz)

        class FrozenDt:
            datetime = FrozenDatetime
            UTC = dt.UTC

        monkeypatch.setattr(analysis.engine.runner, "dt", FrozenDt)
        monkeypatch.setattr(timezone, "now", lambda: moment)


@pytest.mark.parametrize(("moment", "rates", "price_date"), [
    (dt.datetime(2026, 12, 31, 23, 0, tzinfo=dt.UTC), ("0.75", "0.075", "3.75"), None),
    (dt.datetime(2027, 1, 1, 0, 30, tzinfo=dt.UTC), ("1.50", "0.15", "7.50"), "2027-01-01"),
])
def test_the_price_in_force_at_the_call_is_billed_and_recorded(alice_client, emulator, monkeypatch, moment, rates,
                                                                price_date):
    emulator.configure(cached_tokens=200, reasoning_tokens=30)
    response = alice_client.post("/api/v1/jobs/analyze", {
        "transcript": transcript("TS3010a.txt"), "provider": "gemini", "model": "gemini-3.7-flash",
        "tasks": {"summary": "Provide a brief summary"},
    }, format="json")
    assert response.status_code == 202, response.content
    _Clock(moment).install(monkeypatch)
    work_burst()
    monkeypatch.undo()

    data = alice_client.get(f"/api/v1/jobs/{response.json()['job_id']}").json()
    assert data["status"] == "finished", data
    task = data["result"]["metadata"]["tasks"]["summary"]
    [record] = emulator.requests("gemini")
    prompt, output = record["prompt_tokens"], record["output_tokens"] - 30  # output_tokens include the thoughts
    inp, cached, out = (Decimal(r) for r in rates)
    # uncached (prompt - 200) x input + 200 x cached + (visible + 30 thoughts) x output
    expected = ((prompt - 200) * inp + 200 * cached + (output + 30) * out) / Decimal(1_000_000)
    assert task["cost"] == float(expected.quantize(Decimal("0.00000001"), rounding=ROUND_HALF_UP))
    assert (task["price_version"], task["price_date"]) == ("0.2.3", price_date)
