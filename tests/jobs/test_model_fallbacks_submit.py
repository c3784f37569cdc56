"""`fallback_models` at submit: on analyze, batch, estimate, profiles and the CLI; each entry checked like the
job's own model (a 400 naming `fallback_models[i]`); the server's MODEL_FALLBACKS when a job names none and `[]`
to opt out; the spending checks held to the chain's most expensive model; the estimate's range over the chain."""

from __future__ import annotations

import io
from decimal import Decimal

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command

from analysis.checks import check_model_fallbacks
from jobs.models import Job
from scriptripper.env import env_model_fallbacks
from tests.conftest import assert_error, client_for, make_user

pytestmark = pytest.mark.django_db

TEXT = "Alice: We ship on Friday.\nBob: I will write the release notes."
HAIKU = {"provider": "anthropic", "model": "claude-haiku-4-5"}
SCHEMA = {"type": "object", "properties": {"items": {"type": "array", "items": {"type": "string"}}},
          "required": ["items"]}


def analyze(client, path: str = "/api/v1/jobs/analyze", **overrides):
    body = {"transcript": TEXT, "provider": "openai", "model": "gpt-4o-mini", "tasks": {"summary": "Summarize"}}
    body.update(overrides)
    return client.post(path, body, format="json")


def test_a_job_names_its_chain_and_stores_it_as_the_ids_it_resolved_to(alice_client):
    response = analyze(alice_client, fallback_models=[
        {"provider": "Anthropic", "model": "Claude-Haiku-4-5"}, {"provider": "gemini", "model": "gemini-2.5-flash"}])
    assert response.status_code == 202, response.content
    job = Job.objects.get(id=response.json()["job_id"])
    assert job.fallback_models == [HAIKU, {"provider": "gemini", "model": "gemini-2.5-flash"}]
    assert alice_client.get(f"/api/v1/jobs/{job.id}").json()["result"] is None  # nothing run yet
    batch = alice_client.post("/api/v1/jobs/batch", {
        "transcript": TEXT, "provider": "openai", "model": "gpt-4o-mini", "fallback_models": [HAIKU],
        "tasks": [{"task_name": "summary", "prompt": "Summarize"}]}, format="json")
    assert batch.status_code == 202, batch.content
    assert Job.objects.get(id=batch.json()["job_id"]).fallback_models == [HAIKU]


@pytest.mark.parametrize("chain,index,words", [
    ([HAIKU, {"provider": "nowhere", "model": "x"}], 1, "Unknown provider 'nowhere'"),
    ([{"provider": "anthropic", "model": "claude-none"}], 0, "claude-none"),
    ([{"provider": "openai", "model": "gpt-4o-mini"}], 0, "already in the chain"),
    ([HAIKU, HAIKU], 1, "already in the chain"),
    ([HAIKU, {"provider": "openai"}], 1, 'must be an object {"provider", "model"}'),
    ([HAIKU, {"provider": "", "model": "gpt-4o"}], 1, "non-empty strings"),
])
def test_an_entry_that_cannot_run_is_a_400_naming_it(alice_client, chain, index, words):
    error = assert_error(analyze(alice_client, fallback_models=chain), 400, "validation_error",
                         field=f"fallback_models[{index}]")
    assert words in error["fields"][f"fallback_models[{index}]"][0], error
    assert Job.objects.count() == 0


def test_a_chain_longer_than_three_or_not_a_list_is_a_400(alice_client):
    four = [HAIKU, {"provider": "gemini", "model": "gemini-2.5-flash"}, {"provider": "openai", "model": "gpt-4o"},
            {"provider": "openai", "model": "gpt-4.1-mini"}]
    error = assert_error(analyze(alice_client, fallback_models=four), 400, "validation_error", field="fallback_models")
    assert "at most 3" in error["fields"]["fallback_models"][0]
    assert_error(analyze(alice_client, fallback_models="anthropic:claude-haiku-4-5"), 400, "validation_error",
                 field="fallback_models")


def test_a_provider_without_a_key_is_a_400_naming_the_entry(alice_client, settings):
    settings.GEMINI_API_KEY = ""
    error = assert_error(analyze(alice_client, fallback_models=[HAIKU, {"provider": "gemini",
                                                                        "model": "gemini-2.5-flash"}]),
                         400, "validation_error", field="fallback_models[1]")
    assert "GEMINI_API_KEY is not set" in error["fields"]["fallback_models[1]"][0]


def test_a_schema_task_is_refused_when_a_chain_member_lacks_structured_output(alice_client):
    tasks = {"actions": {"prompt": "List the action items", "schema": SCHEMA}}
    error = assert_error(analyze(alice_client, tasks=tasks, fallback_models=[HAIKU, {"provider": "openai",
                                                                                     "model": "gpt-4-turbo"}]),
                         400, "validation_error", field="fallback_models[1]")
    assert "gpt-4-turbo takes no JSON Schema" in error["fields"]["fallback_models[1]"][0]
    assert "'actions'" in error["fields"]["fallback_models[1]"][0]
    # A cited text task needs it too; a plain task does not.
    cited = {"summary": {"prompt": "Summarize", "cite": True}}
    assert_error(analyze(alice_client, tasks=cited, fallback_models=[{"provider": "anthropic",
                                                                     "model": "claude-sonnet-4-0"}]),
                 400, "validation_error", field="fallback_models[0]")
    assert analyze(alice_client, fallback_models=[{"provider": "openai", "model": "gpt-4-turbo"}]).status_code == 202
    # The job's own model is held to the same rule.
    assert_error(analyze(alice_client, model="gpt-4-turbo", tasks=tasks), 400, "validation_error", field="model")


def test_a_mode_a_chain_member_cannot_run_in_without_a_standard_fallback_is_a_400(alice_client):
    # gpt-5-mini has a flex price; claude-haiku-4-5 has none: with fallback fail it could only answer at standard.
    error = assert_error(analyze(alice_client, model="gpt-5-mini", processing="flex", fallback="fail",
                                 fallback_models=[{"provider": "gemini", "model": "gemini-3.5-flash"}, HAIKU]),
                         400, "validation_error", field="fallback_models[1]")
    assert "no flex price" in error["fields"]["fallback_models[1]"][0]
    # With the default fallback (standard) it is accepted: it runs standard.
    assert analyze(alice_client, model="gpt-5-mini", processing="flex", fallback_models=[HAIKU]).status_code == 202
    # A batch job's chain answers directly, at the standard price: its fallback must allow it.
    assert_error(analyze(alice_client, processing="batch", fallback="fail", fallback_models=[HAIKU]), 400,
                 "validation_error", field="fallback_models[0]")
    assert analyze(alice_client, processing="batch", fallback_models=[HAIKU]).status_code == 202


def test_the_servers_defaults_apply_when_a_job_names_none_and_an_empty_list_opts_out(alice_client, settings):
    settings.MODEL_FALLBACKS = {"gpt-4o-mini": [HAIKU]}
    named_none = Job.objects.get(id=analyze(alice_client).json()["job_id"])
    assert named_none.fallback_models == [HAIKU]
    opted_out = Job.objects.get(id=analyze(alice_client, fallback_models=[]).json()["job_id"])
    assert opted_out.fallback_models == []
    other_model = Job.objects.get(id=analyze(alice_client, model="gpt-4o").json()["job_id"])
    assert other_model.fallback_models == []
    # Keyed by the catalogue id, a default also serves a job that names the model by an alias.
    settings.MODEL_FALLBACKS = {"claude-haiku-4-5": [{"provider": "openai", "model": "gpt-4o-mini"}]}
    by_alias = Job.objects.get(id=analyze(alice_client, provider="anthropic",
                                          model="claude-haiku-4-5-20251001").json()["job_id"])
    assert by_alias.fallback_models == [{"provider": "openai", "model": "gpt-4o-mini"}]
    own = Job.objects.get(id=analyze(alice_client, fallback_models=[{"provider": "gemini",
                                                                     "model": "gemini-2.5-flash"}]).json()["job_id"])
    assert own.fallback_models == [{"provider": "gemini", "model": "gemini-2.5-flash"}]


def test_model_fallbacks_is_parsed_loudly_and_checked_at_start(monkeypatch, settings):
    monkeypatch.setenv("MODEL_FALLBACKS", '{"gemini-2.5-flash": [{"provider": "openai", "model": "gpt-4o-mini"}]}')
    assert env_model_fallbacks("MODEL_FALLBACKS") == {"gemini-2.5-flash": [{"provider": "openai",
                                                                            "model": "gpt-4o-mini"}]}
    for bad, words in (("[1, 2]", "must be a JSON object"), ("{not json", "not valid JSON"),
                       ('{"gpt-4o-mini": [{"provider": "openai"}]}', "gpt-4o-mini[0]"),
                       ('{"gpt-4o-mini": [' + ",".join(['{"provider": "openai", "model": "gpt-4o"}'] * 4) + "]}",
                        "at most 3")):
        monkeypatch.setenv("MODEL_FALLBACKS", bad)
        with pytest.raises(ImproperlyConfigured, match="MODEL_FALLBACKS") as raised:
            env_model_fallbacks("MODEL_FALLBACKS")
        assert words in str(raised.value)
    settings.MODEL_FALLBACKS = {"gpt-4o-mini": [HAIKU, {"provider": "openai", "model": "gpt-nothing"}]}
    [problem] = check_model_fallbacks(None)
    assert problem.id == "scriptripper.E104" and "gpt-nothing" in problem.msg


def test_a_profile_stores_its_chain_for_its_jobs(alice_client):
    response = alice_client.post("/api/v1/profiles", {
        "name": "resilient", "tasks": [{"name": "summary", "prompt": "Summarize"}], "default_provider": "openai",
        "default_model": "gpt-4o-mini", "fallback_models": [HAIKU]}, format="json")
    assert response.status_code == 201, response.content
    profile = response.json()
    assert profile["fallback_models"] == [HAIKU]
    job = Job.objects.get(id=alice_client.post("/api/v1/jobs/analyze", {"transcript": TEXT, "profile": "resilient"},
                                               format="json").json()["job_id"])
    assert job.fallback_models == [HAIKU]
    # The request's own chain wins, [] included.
    job = Job.objects.get(id=alice_client.post("/api/v1/jobs/analyze", {
        "transcript": TEXT, "profile": "resilient", "fallback_models": []}, format="json").json()["job_id"])
    assert job.fallback_models == []
    # Checked as at submit, against the profile's own tasks and model.
    refused = alice_client.patch(f"/api/v1/profiles/{profile['id']}", {"fallback_models": [
        {"provider": "openai", "model": "gpt-4o-mini"}]}, format="json")
    assert_error(refused, 400, "validation_error", field="fallback_models[0]")
    cleared = alice_client.patch(f"/api/v1/profiles/{profile['id']}", {"fallback_models": None}, format="json")
    assert cleared.status_code == 200 and cleared.json()["fallback_models"] is None


def test_the_cli_takes_fallback_models(alice, tmp_path):
    path = tmp_path / "meeting.txt"
    path.write_text(TEXT)
    call_command("analyze", str(path), "--user", "alice", "--task", "summary=Summarize", "--provider", "openai",
                 "--model", "gpt-4o-mini", "--fallback-model", "anthropic:claude-haiku-4-5", "--fallback-model",
                 "gemini:gemini-2.5-flash", stdout=io.StringIO(), stderr=io.StringIO())
    assert Job.objects.get().fallback_models == [HAIKU, {"provider": "gemini", "model": "gemini-2.5-flash"}]
    with pytest.raises(CommandError, match="not PROVIDER:MODEL"):
        call_command("analyze", str(path), "--user", "alice", "--task", "summary=Summarize", "--provider", "openai",
                     "--model", "gpt-4o-mini", "--fallback-model", "claude-haiku-4-5", stdout=io.StringIO(),
                     stderr=io.StringIO())
    with pytest.raises(CommandError, match=r"fallback_models\[0\]"):
        call_command("analyze", str(path), "--user", "alice", "--task", "summary=Summarize", "--provider", "openai",
                     "--model", "gpt-4o-mini", "--fallback-model", "anthropic:claude-none", stdout=io.StringIO(),
                     stderr=io.StringIO())


def test_the_estimate_shows_the_range_over_the_chain(alice_client):
    response = analyze(alice_client, "/api/v1/jobs/estimate", max_output_tokens=1000,
                       fallback_models=[HAIKU, {"provider": "gemini", "model": "gemini-2.5-flash-lite"}])
    assert response.status_code == 200, response.content
    data = response.json()
    members = data["fallback_models"]
    assert [(m["provider"], m["model"]) for m in members] == [("anthropic", "claude-haiku-4-5"),
                                                              ("gemini", "gemini-2.5-flash-lite")]
    # Each member priced alone, the same way the job's own model is.
    alone = analyze(alice_client, "/api/v1/jobs/estimate", provider="anthropic", model="claude-haiku-4-5",
                    max_output_tokens=1000).json()
    assert (members[0]["cost_low"], members[0]["cost_high"]) == (alone["cost_low"], alone["cost_high"])
    lows = [data["cost_low"], *(m["cost_low"] for m in members)]
    highs = [data["cost_high"], *(m["cost_high"] for m in members)]
    assert data["chain_cost_low"] == min(lows) and data["chain_cost_high"] == max(highs)
    assert data["chain_cost_high"] == members[0]["cost_high"] > data["cost_high"]  # Haiku costs more than 4o-mini
    plain = analyze(alice_client, "/api/v1/jobs/estimate").json()
    assert plain["fallback_models"] == [] and plain["chain_cost_high"] == plain["cost_high"]


def test_the_spending_checks_hold_the_job_to_the_chains_most_expensive_model(db):
    estimate = analyze(client_for(make_user("carol", plan="free")), "/api/v1/jobs/estimate",
                       max_output_tokens=1000, fallback_models=[HAIKU]).json()
    own_high, chain_high = Decimal(str(estimate["cost_high"])), Decimal(str(estimate["chain_cost_high"]))
    assert chain_high > own_high
    # A budget that the job's own model fits, but not its fallback: refused.
    between = ((own_high + chain_high) / 2).quantize(Decimal("0.000001"))
    dave = client_for(make_user("dave", plan="free", monthly_budget=between))
    assert_error(analyze(dave, max_output_tokens=1000, fallback_models=[HAIKU]), 402, "budget_exceeded")
    assert analyze(dave, max_output_tokens=1000, fallback_models=[]).status_code == 202
    # max_cost: held to the most expensive model's lowest cost.
    chain_low = Decimal(str(analyze(dave, "/api/v1/jobs/estimate", provider="anthropic", model="claude-haiku-4-5",
                                    max_output_tokens=1000).json()["cost_low"]))
    below = (chain_low * Decimal("0.9")).quantize(Decimal("0.00000001"))
    assert_error(analyze(dave, max_output_tokens=1000, fallback_models=[HAIKU], max_cost=str(below)), 400,
                 "validation_error", field="max_cost")
