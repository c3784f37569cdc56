"""The three batch protocols, end to end over real HTTP: the real SDKs (through analysis/providers/batch_*.py)
against the emulator's batch endpoints: create with a submission key, find the batch by its key, results mapped
back by custom id (Gemini: metadata), partial failure, expiry, failure, cancel."""

from __future__ import annotations

import datetime as dt

import pytest

from analysis.clients import batch_api
from analysis.engine.providers.base import GenerationParams, Prompt
from analysis.engine.providers.provider_batches import CANCELED, COMPLETED, ENDED, EXPIRED, FAILED, IN_PROGRESS
from emulator import faults
from emulator.batches import configure_batches, list_batches

MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-haiku-4-5", "gemini": "gemini-2.5-flash"}
PARAMS = GenerationParams(max_output_tokens=200)
PROVIDERS = list(MODELS)


def entries(api, model: str, n: int = 3) -> tuple[list[dict], list[str]]:
    ids = [f"req{i}x{api.name}" for i in range(n)]
    prompts = [Prompt(system="You analyze meetings.", document="Alice: We ship on Friday.",
                      instruction=f"[q{i}] Question {i} about the meeting") for i in range(n)]
    return [api.build(custom_id=cid, model=model, prompt=p, params=PARAMS) for cid, p in zip(ids, prompts)], ids


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_batch_is_created_found_by_its_key_and_answers_every_request(emulator, provider):
    api, model = batch_api(provider), MODELS[provider]
    requests, ids = entries(api, model)
    since = dt.datetime.now(dt.UTC)
    batch_id = api.create(model=model, entries=requests, key="sr-key-1")
    assert api.find(key="sr-key-1", since=since, count=3, claimed=set()) == batch_id
    if provider == "anthropic":
        # No key on a message batch: ours is the unclaimed one created since the key was committed, with our
        # request count; once claimed (its id stored) it is nobody else's, and another count is not ours.
        assert api.find(key="sr-key-1", since=since, count=3, claimed={batch_id}) is None
        assert api.find(key="sr-key-1", since=since, count=4, claimed=set()) is None
    else:
        assert api.find(key="sr-other", since=since, count=3, claimed=set()) is None
    assert api.state(batch_id).state == ENDED and api.state(batch_id).outcome == COMPLETED
    results = api.results(batch_id)
    assert set(results) == set(ids)
    for i, cid in enumerate(ids):
        assert f"[q{i}]" in results[cid].text and results[cid].usage.input_tokens > 0
    sent = [r for r in emulator.requests(provider) if r.get("batch")]
    assert len(sent) == 3 and all(r["status"] == 200 for r in sent)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_request_the_batch_fails_comes_back_as_an_error_the_others_as_answers(emulator, provider):
    emulator.add_faults([faults.status(400, provider, match="[q1]", message="bad request in the batch")])
    api, model = batch_api(provider), MODELS[provider]
    requests, ids = entries(api, model)
    results = api.results(api.create(model=model, entries=requests, key="sr-partial"))
    assert isinstance(results[ids[1]], str) and "failed" in results[ids[1]]
    assert not isinstance(results[ids[0]], str) and not isinstance(results[ids[2]], str)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_an_expired_batch_answers_some_and_leaves_the_rest_without_a_result(emulator, provider):
    configure_batches(emulator.url, outcome="expired", expire_answered=1)
    api, model = batch_api(provider), MODELS[provider]
    requests, ids = entries(api, model)
    batch_id = api.create(model=model, entries=requests, key="sr-expired")
    assert api.state(batch_id).outcome == EXPIRED
    assert set(api.results(batch_id)) == {ids[0]}


@pytest.mark.parametrize("provider", ["openai", "gemini"])
def test_a_failed_batch_has_no_results(emulator, provider):
    configure_batches(emulator.url, outcome="failed")
    api, model = batch_api(provider), MODELS[provider]
    requests, _ = entries(api, model)
    batch_id = api.create(model=model, entries=requests, key="sr-failed")
    assert api.state(batch_id).outcome == FAILED and api.results(batch_id) == {}


@pytest.mark.parametrize("provider", PROVIDERS)
def test_cancel_reaches_the_provider(emulator, provider):
    configure_batches(emulator.url, completion_delay=3600)
    api, model = batch_api(provider), MODELS[provider]
    requests, _ = entries(api, model)
    batch_id = api.create(model=model, entries=requests, key="sr-cancel")
    assert api.state(batch_id).state == IN_PROGRESS
    api.cancel(batch_id)
    assert api.state(batch_id).outcome == CANCELED and api.results(batch_id) == {}
    [listed] = list_batches(emulator.url)
    assert listed["canceled"] and listed["provider"] == provider


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_capacity_refusal_at_create_is_a_rate_limit(emulator, provider):
    configure_batches(emulator.url, create_refusals=1)
    api, model = batch_api(provider), MODELS[provider]
    requests, _ = entries(api, model)
    from analysis.engine.providers.base import ProviderError

    with pytest.raises(ProviderError) as refused:
        api.create(model=model, entries=requests, key="sr-refused")
    assert refused.value.kind == "rate_limit" and refused.value.retryable
    assert api.create(model=model, entries=requests, key="sr-refused")  # the next one is accepted
