"""The model catalogue: genai-prices' data under the catalogue.toml overlay, and the look-ups the API and worker use."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from analysis.engine.catalogue import (
    RetiredModelError, UnknownModelError, UnknownProviderError, effective_context, get_model, list_models,
    load_catalogue, model_names, parse_catalogue, parse_context_overrides, resolve_model, skipped_models, utc_today,
)
from analysis.engine.catalogue_sources import CatalogueError
from analysis.engine.model_info import UNLISTED_CONTEXT_WINDOW, UNLISTED_MAX_OUTPUT_TOKENS, ModelInfo
from analysis.engine.providers import PROVIDER_NAMES

D = Decimal

# The figures of shared/reference/providers.md, which the catalogue must reproduce exactly (prices from
# genai-prices; the windows genai-prices rounds or lacks, and every output limit, from the overlay): input,
# cached read and output in USD per million tokens, the context window and the output limit in tokens.
REFERENCE_TABLE = """
provider   model                  input  cached  output  context    max_out
gemini     gemini-2.5-flash       0.30   0.03    2.50    1_048_576  65_535
gemini     gemini-2.5-pro         1.25   0.125   10      1_048_576  65_535
gemini     gemini-2.5-flash-lite  0.10   0.01    0.40    1_048_576  65_535
openai     gpt-4o                 2.50   1.25    10      128_000    16_384
openai     gpt-4o-mini            0.15   0.075   0.60    128_000    16_384
openai     gpt-4.1                2.00   0.50    8.00    1_047_576  32_768
openai     gpt-4.1-mini           0.40   0.10    1.60    1_047_576  32_768
openai     gpt-5                  1.25   0.125   10      272_000    128_000
openai     gpt-5-mini             0.25   0.025   2.00    272_000    128_000
anthropic  claude-sonnet-4-5      3      0.30    15      200_000    64_000
anthropic  claude-haiku-4-5       1      0.10    5       200_000    64_000
anthropic  claude-opus-4-5        5      0.50    25      200_000    64_000
"""
REFERENCE_PRICES = [(provider, model, inp, cached, out, int(context), int(max_out))
                    for provider, model, inp, cached, out, context, max_out
                    in (line.split() for line in REFERENCE_TABLE.strip().splitlines()[1:])]


@pytest.mark.parametrize(("provider", "model", "inp", "cached", "out", "context", "max_out"), REFERENCE_PRICES)
def test_reference_prices(
    provider: str, model: str, inp: str, cached: str, out: str, context: int, max_out: int
) -> None:
    info = get_model(provider, model)
    assert info is not None
    assert (info.input, info.cached_input, info.output) == (D(inp), D(cached), D(out))
    assert info.reasoning == info.output  # thinking is billed as output everywhere in the catalogue
    assert (info.context_window, info.max_output_tokens) == (context, max_out)


def test_prices_are_exact_decimals() -> None:
    # parse_float=Decimal: 0.075 must not arrive as 0.07499999999999999722444243843710864894092082977294921875
    assert get_model("openai", "gpt-4o-mini").cached_input == D("0.075")  # type: ignore[union-attr]
    for info in list_models():
        for price in (info.input, info.cached_input, info.cache_write, info.output, info.reasoning):
            assert isinstance(price, Decimal)


@pytest.mark.parametrize(
    ("model", "write_5m", "write_1h"),
    [("claude-sonnet-4-5", "3.75", "6"), ("claude-haiku-4-5", "1.25", "2"), ("claude-opus-4-5", "6.25", "10")],
)
def test_anthropic_cache_writes(model: str, write_5m: str, write_1h: str) -> None:
    info = get_model("anthropic", model)
    assert info is not None
    assert info.cache_write == D(write_5m) == info.input * D("1.25")
    assert info.cache_write_1h == D(write_1h) == info.input * 2
    assert info.cached_input == info.input / 10


def test_implicit_cache_providers_bill_writes_as_input() -> None:
    # Where genai-prices gives no cache-write price it bills written tokens as input, and so do we.
    for name in ("gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-5", "gpt-5.4"):
        info = get_model("openai", name)
        assert info is not None and info.cache_write == info.input, name
    for info in list_models("gemini"):
        assert info.cache_write == info.input, info.name
        assert info.cache_write_1h is None
    # OpenAI's gpt-5.6 family does bill writes (1.25x input, genai-prices 0.2.3), and that price is kept.
    sol = get_model("openai", "gpt-5.6-sol")
    assert sol is not None and (sol.input, sol.cache_write) == (D("4"), D("5"))


def test_gemini_pro_long_prompt_tier() -> None:
    info = get_model("gemini", "gemini-2.5-pro")
    assert info is not None
    assert info.tier_threshold == 200_000
    assert (info.input_above, info.cached_input_above, info.output_above) == (D("2.50"), D("0.25"), D("15"))
    # genai-prices knows more long-prompt tiers than the first catalogue did (it had only this one).
    gpt54 = get_model("openai", "gpt-5.4")
    assert gpt54 is not None and gpt54.tier_threshold == 272_000 and gpt54.input_above == 2 * gpt54.input
    assert get_model("gemini", "gemini-2.5-flash").tier_threshold is None  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("provider", "model", "reasoning"),
    [
        ("openai", "gpt-5", True),
        ("openai", "gpt-5-mini", True),
        ("openai", "gpt-5-nano", True),
        ("openai", "o4-mini", True),
        ("openai", "gpt-4o", False),
        ("openai", "gpt-4.1-mini", False),
        ("gemini", "gemini-2.5-flash", True),
        ("gemini", "gemini-2.5-pro", True),
        ("gemini", "gemini-2.0-flash", False),
        ("anthropic", "claude-sonnet-4-5", False),
    ],
)
def test_reasoning_models(provider: str, model: str, reasoning: bool) -> None:
    info = get_model(provider, model)
    assert info is not None and info.reasoning_model is reasoning


def test_min_cache_tokens() -> None:
    assert get_model("openai", "gpt-4o").min_cache_tokens == 1_024  # type: ignore[union-attr]
    assert get_model("anthropic", "claude-sonnet-4-5").min_cache_tokens == 1_024  # type: ignore[union-attr]
    assert get_model("anthropic", "claude-haiku-4-5").min_cache_tokens == 4_096  # type: ignore[union-attr]
    assert get_model("anthropic", "claude-opus-4-5").min_cache_tokens == 4_096  # type: ignore[union-attr]
    assert get_model("gemini", "gemini-2.5-pro").min_cache_tokens == 4_096  # type: ignore[union-attr]


def test_every_entry_is_sourced_and_sane() -> None:
    for info in list_models():
        assert info.listed
        assert info.price_source.startswith("genai-prices ")
        assert info.overlay_sources and all(source.strip() for source in info.overlay_sources)
        # The start of the dated price in force, or "" when the data gives the price no start date.
        period = info.period_at()
        assert info.price_date == (period.start.isoformat() if period.start else "")
        assert info.cached_input <= info.input
        assert 0 < info.max_output_tokens <= info.context_window


def test_listing() -> None:
    catalogue = load_catalogue()
    assert tuple(catalogue) == PROVIDER_NAMES
    assert {"claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-5", "claude-opus-4-8"} <= set(model_names("anthropic"))
    assert [i.name for i in list_models("gemini")] == model_names("gemini")
    assert len(list_models()) == sum(len(m) for m in catalogue.values())
    assert {i.provider for i in list_models("openai")} == {"openai"}


def test_load_catalogue_returns_copies() -> None:
    load_catalogue()["openai"].pop("gpt-4o")
    assert get_model("openai", "gpt-4o") is not None
    assert "gpt-4o" in load_catalogue()["openai"]


def test_dated_alias_resolves_to_its_model() -> None:
    info = get_model("anthropic", "claude-sonnet-4-5-20250929")
    assert info is get_model("anthropic", "claude-sonnet-4-5")
    assert "claude-sonnet-4-5-20250929" not in model_names("anthropic")


def test_lookup_is_per_provider() -> None:
    assert get_model("openai", "claude-sonnet-4-5") is None
    assert get_model("gemini", "gpt-4o") is None


def test_unknown_provider() -> None:
    with pytest.raises(UnknownProviderError, match="Valid providers: gemini, openai, anthropic"):
        get_model("mistral", "x")
    with pytest.raises(UnknownProviderError):
        list_models("OpenAI")  # no silent case folding: the API validates the exact name
    with pytest.raises(UnknownProviderError):
        resolve_model("mistral", "x", allow_unlisted=True)


def test_as_dict_is_json_ready() -> None:
    data = get_model("gemini", "gemini-2.5-pro").as_dict()  # type: ignore[union-attr]
    json.dumps(data)  # no Decimal, no tuple surprises
    assert data["input"] == 1.25 and data["output_above"] == 15.0 and data["tier_threshold"] == 200_000
    assert data["listed"] is True and data["name"] == "gemini-2.5-pro" and data["provider"] == "gemini"
    assert get_model("openai", "gpt-4o").as_dict()["input_above"] is None  # type: ignore[union-attr]


# ─────────────────────────────── resolve_model / unlisted / context ───────────────────────────────


def test_resolve_listed() -> None:
    assert resolve_model("openai", "gpt-4o", allow_unlisted=False) is get_model("openai", "gpt-4o")


def test_resolve_unlisted_rejected_lists_valid_models() -> None:
    with pytest.raises(UnknownModelError) as excinfo:
        resolve_model("anthropic", "claude-9", allow_unlisted=False)
    message = str(excinfo.value)
    assert "'claude-9'" in message and "'anthropic'" in message
    served = [n for n in model_names("anthropic") if not get_model("anthropic", n).retired(utc_today())]  # type: ignore[union-attr]
    for name in served:
        assert name in message
    assert "gpt-4o" not in message
    assert excinfo.value.valid == served
    assert isinstance(excinfo.value, ValueError)


def test_resolve_unlisted_allowed() -> None:
    info = resolve_model("openai", "llama3.1:8b", allow_unlisted=True)
    assert info.listed is False
    assert info.name == "llama3.1:8b" and info.provider == "openai"
    assert (info.context_window, info.max_output_tokens) == (UNLISTED_CONTEXT_WINDOW, UNLISTED_MAX_OUTPUT_TOKENS)
    assert (info.context_window, info.max_output_tokens) == (128_000, 4_096)
    assert info.input == info.cached_input == info.cache_write == info.output == info.reasoning == 0
    assert info.tier_threshold is None and info.reasoning_model is False
    assert info.as_dict()["listed"] is False


def test_resolve_unlisted_takes_its_context_from_the_override() -> None:
    # The operator knows the local model; the override may be larger or smaller than our default guess.
    small = resolve_model("openai", "llama3.1:8b", allow_unlisted=True, context_overrides={"llama3.1:8b": 8_192})
    assert small.context_window == 8_192
    large = resolve_model("openai", "qwen", allow_unlisted=True, context_overrides={"qwen": 262_144})
    assert large.context_window == 262_144
    tiny = resolve_model("openai", "tiny", allow_unlisted=True, context_overrides={"tiny": 2_048})
    assert (tiny.context_window, tiny.max_output_tokens) == (2_048, 2_048)


def test_resolve_listed_override_only_narrows() -> None:
    narrowed = resolve_model("openai", "gpt-4o", allow_unlisted=False, context_overrides={"gpt-4o": 32_000})
    assert narrowed.context_window == 32_000
    assert narrowed.input == D("2.50")  # prices untouched
    assert get_model("openai", "gpt-4o").context_window == 128_000  # type: ignore[union-attr]  # cache untouched
    widened = resolve_model("openai", "gpt-4o", allow_unlisted=False, context_overrides={"gpt-4o": 500_000})
    assert widened.context_window == 128_000


def test_resolve_override_by_alias() -> None:
    info = resolve_model(
        "anthropic",
        "claude-haiku-4-5-20251001",
        allow_unlisted=False,
        context_overrides={"claude-haiku-4-5-20251001": 50_000},
    )
    assert info.name == "claude-haiku-4-5-20251001" and info.context_window == 50_000


def test_resolve_alias_keeps_requested_id() -> None:
    # The worker sends info.name to the provider: a dated snapshot must not be swapped for the moving alias.
    info = resolve_model("openai", "gpt-4o-2024-08-06", allow_unlisted=False)
    assert info.name == "gpt-4o-2024-08-06" and info.listed
    canonical = get_model("openai", "gpt-4o")
    assert canonical is not None and info.input == canonical.input and info.output == canonical.output


def test_effective_context() -> None:
    info = get_model("openai", "gpt-4.1")
    assert info is not None
    assert effective_context(info, max_prompt_tokens=0, overrides={}) == 1_047_576
    assert effective_context(info, max_prompt_tokens=100_000, overrides={}) == 100_000
    assert effective_context(info, max_prompt_tokens=100_000, overrides={"gpt-4.1": 60_000}) == 60_000
    assert effective_context(info, max_prompt_tokens=50_000, overrides={"gpt-4.1": 60_000}) == 50_000
    assert effective_context(info, max_prompt_tokens=0, overrides={"gpt-4o": 1_000}) == 1_047_576
    small = get_model("openai", "gpt-4o")
    assert small is not None
    assert effective_context(small, max_prompt_tokens=1_000_000, overrides={}) == 128_000


def test_effective_context_unlisted() -> None:
    info = resolve_model("openai", "phi", allow_unlisted=True, context_overrides={"phi": 4_000})
    assert effective_context(info, max_prompt_tokens=0, overrides={"phi": 4_000}) == 4_000
    assert effective_context(info, max_prompt_tokens=2_000, overrides={"phi": 4_000}) == 2_000


# ─────────────────────────────────── MODEL_CONTEXT_OVERRIDES ───────────────────────────────────


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", {}),
        ("   ", {}),
        ("gpt-4o=32000", {"gpt-4o": 32_000}),
        (" llama3.1:8b = 8192 , qwen2.5:7b=32_768,", {"llama3.1:8b": 8_192, "qwen2.5:7b": 32_768}),
        ("a=1,a=1", {"a": 1}),
    ],
)
def test_parse_context_overrides(value: str, expected: dict[str, int]) -> None:
    assert parse_context_overrides(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("gpt-4o", "not of the form model=tokens"),
        ("gpt-4o:32000", "not of the form model=tokens"),
        ("=32000", "not of the form model=tokens"),
        ("gpt-4o=", "not of the form model=tokens"),
        ("gpt-4o=32k", "'32k' is not a whole number"),
        ("gpt-4o=3.5", "not a whole number"),
        ("gpt-4o=0", "must be positive"),
        ("gpt-4o=-5", "must be positive"),
        ("a=1,b", "'b' is not of the form"),
        ("a=1,a=2", "given twice"),
    ],
)
def test_parse_context_overrides_errors(value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_context_overrides(value)


# ─────────────────────────────────── overlay validation ───────────────────────────────────

GOOD_OVERLAY = """
[openai.defaults]
max_output_tokens = 100
source = "test defaults"

[[openai.rules]]
prefixes = ["gpt-4o"]
max_output_tokens = 200
source = "test rule"

[openai.models."gpt-4o"]
aliases = ["gpt-4o-dated"]
input_cap = 50_000
retires = 2030-01-01
source = "test model"
"""


def test_overlay_layers_defaults_rules_and_models() -> None:
    catalogue = parse_catalogue(GOOD_OVERLAY)
    info = catalogue["openai"]["gpt-4o"]
    assert isinstance(info, ModelInfo)
    assert (info.max_output_tokens, info.context_window, info.total_context) == (200, 50_000, 128_000)
    assert info.overlay_sources == ("test defaults", "test rule", "test model")
    assert "gpt-4o-dated" in info.aliases and "gpt-4o-2024-08-06" in info.aliases
    assert str(info.retires_on) == "2030-01-01"
    assert catalogue["openai"]["gpt-4.1"].max_output_tokens == 100  # defaults only
    assert info.input == D("2.5")  # prices are the library's, untouched by the overlay


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace("max_output_tokens = 200", "max_ouput_tokens = 200"), "unknown key"),
        (lambda t: t.replace('source = "test rule"', ""), "needs a non-empty source"),
        (lambda t: t.replace("[openai.defaults]", "[mistral.defaults]"), "unknown provider"),
        (lambda t: t.replace("input_cap = 50_000", "input_cap = 0"), "positive integer"),
        (lambda t: t.replace("input_cap = 50_000", "input_cap = true"), "positive integer"),
        (lambda t: t.replace("retires = 2030-01-01", 'retires = "soon"'), "retires must be a TOML date"),
        (lambda t: t + '[openai.models."gpt-99"]\nsource = "x"\n', "lists no gpt-99"),
        (lambda t: t.replace('aliases = ["gpt-4o-dated"]', 'aliases = ["gpt-4o-mini"]'), "names both"),
        (lambda t: t.replace('prefixes = ["gpt-4o"]', ""), "needs ids or prefixes"),
        (lambda t: t + '[openai.models."gpt-4.1"]\nflex = { input = -1, output = 1 }\nsource = "x"\n', "non-negative"),
        (lambda t: t + "[openai.", "not valid TOML"),
    ],
)
def test_overlay_rejects_bad_entries(edit, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(CatalogueError, match=message):
        parse_catalogue(edit(GOOD_OVERLAY))


def test_every_library_text_model_is_offered_or_left_out_with_a_reason() -> None:
    from genai_prices.data import providers

    offered = {(i.provider, i.name) for i in list_models()}
    skipped = {(s.provider, s.model): s.reason for s in skipped_models()}
    ours = {"google": "gemini", "openai": "openai", "anthropic": "anthropic"}
    for entry in providers:
        if entry.id in ours:
            for model in entry.models:
                key = (ours[entry.id], model.id)
                assert key in offered or skipped.get(key), key
    # what the issue names, from the new data
    for provider, name in [("openai", "gpt-5.1"), ("openai", "gpt-5.6-sol"), ("anthropic", "claude-sonnet-4-6"),
                           ("anthropic", "claude-opus-4-8"), ("gemini", "gemini-3.5-flash"),
                           ("gemini", "gemini-3.7-flash"), ("gemini", "gemini-3.1-pro-preview")]:
        assert (provider, name) in offered, name
    # and what it says to leave out
    for provider, name in [("gemini", "claude-sonnet-4-5"), ("gemini", "gemini-2.5-flash-tts"),
                           ("gemini", "gemini-3.8-live"), ("gemini", "gemini-embedding-001"),
                           ("openai", "gpt-realtime"), ("openai", "gpt-audio"), ("openai", "gpt-image-1")]:
        assert (provider, name) not in offered and skipped[(provider, name)], name


def test_names_resolve_exactly_never_by_pattern() -> None:
    # genai-prices matches "gpt-4o-anything" to gpt-4o by prefix; a job must name a real id or alias.
    assert get_model("openai", "gpt-4o-anything") is None
    assert get_model("openai", "gpt-5-2") is None  # a spelling genai-prices matches, not an API id
    assert get_model("openai", "GPT-4o") is get_model("openai", "gpt-4o")  # case-insensitive
    assert resolve_model("openai", "GPT-4o", allow_unlisted=False).name == "gpt-4o"  # stored as the id
    info = resolve_model("openai", "gpt-4o-2024-11-20", allow_unlisted=False)
    assert (info.name, info.catalogue_id) == ("gpt-4o-2024-11-20", "gpt-4o")


def test_input_cap_within_the_total_context() -> None:
    for name in ("gpt-5", "gpt-5-mini", "gpt-5-nano", "gpt-5.1", "gpt-5.2"):
        info = get_model("openai", name)
        assert info is not None and (info.context_window, info.total_context) == (272_000, 400_000), name
    assert get_model("openai", "gpt-5.4").context_window == 1_050_000  # type: ignore[union-attr]


def test_context_windows_the_library_lacks_come_from_the_overlay() -> None:
    pro = get_model("gemini", "gemini-2.5-pro")
    assert pro is not None and pro.context_window == 1_048_576
    assert any("gemini-2.5-pro" in source for source in pro.overlay_sources)


def test_a_model_is_served_until_its_retirement_day_and_refused_after() -> None:
    import datetime as dt

    sonnet = get_model("anthropic", "claude-sonnet-4-5")
    assert sonnet is not None and sonnet.retires_on == dt.date(2026, 11, 30)
    assert sonnet.as_dict()["retires_on"] == "2026-11-30"
    for name in ("claude-sonnet-4-5", "claude-sonnet-4-5-20250929"):
        assert resolve_model("anthropic", name, allow_unlisted=False, today=dt.date(2026, 11, 30)).name == name
        with pytest.raises(RetiredModelError, match="retired by anthropic on 2026-11-30") as caught:
            resolve_model("anthropic", name, allow_unlisted=True, today=dt.date(2026, 12, 1))
        assert isinstance(caught.value, UnknownModelError)  # refused wherever an unknown model is
        assert "claude-haiku-4-5" in caught.value.valid and "claude-sonnet-4-5" not in caught.value.valid
    assert get_model("anthropic", "claude-haiku-4-5").retires_on is None  # type: ignore[union-attr]
