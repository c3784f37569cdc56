"""The model catalogue: the data in catalogue.toml, and the look-ups the API and worker use."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from analysis.catalogue import (
    PROVIDERS,
    UNLISTED_CONTEXT_WINDOW,
    UNLISTED_MAX_OUTPUT_TOKENS,
    CatalogueError,
    ModelInfo,
    UnknownModelError,
    UnknownProviderError,
    effective_context,
    get_model,
    list_models,
    load_catalogue,
    model_names,
    parse_catalogue,
    parse_context_overrides,
    resolve_model,
    RetiredModelError,
)

D = Decimal

# (provider, model, input, cached read, output, context window, max output): the figures in
# shared/reference/providers.md, which the catalogue must reproduce exactly.
REFERENCE_PRICES = [
    ("gemini", "gemini-2.5-flash", "0.30", "0.03", "2.50", 1_048_576, 65_535),
    ("gemini", "gemini-2.5-pro", "1.25", "0.125", "10", 1_048_576, 65_535),
    ("gemini", "gemini-2.5-flash-lite", "0.10", "0.01", "0.40", 1_048_576, 65_535),
    ("openai", "gpt-4o", "2.50", "1.25", "10", 128_000, 16_384),
    ("openai", "gpt-4o-mini", "0.15", "0.075", "0.60", 128_000, 16_384),
    ("openai", "gpt-4.1", "2.00", "0.50", "8.00", 1_047_576, 32_768),
    ("openai", "gpt-4.1-mini", "0.40", "0.10", "1.60", 1_047_576, 32_768),
    ("openai", "gpt-5", "1.25", "0.125", "10", 272_000, 128_000),
    ("openai", "gpt-5-mini", "0.25", "0.025", "2.00", 272_000, 128_000),
    ("anthropic", "claude-sonnet-4-5", "3", "0.30", "15", 200_000, 64_000),
    ("anthropic", "claude-haiku-4-5", "1", "0.10", "5", 200_000, 64_000),
    ("anthropic", "claude-opus-4-5", "5", "0.50", "25", 200_000, 64_000),
]


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
    for provider in ("openai", "gemini"):
        for info in list_models(provider):
            assert info.cache_write == info.input, info.name
            assert info.cache_write_1h is None


def test_gemini_pro_long_prompt_tier() -> None:
    info = get_model("gemini", "gemini-2.5-pro")
    assert info is not None
    assert info.tier_threshold == 200_000
    assert (info.input_above, info.cached_input_above, info.output_above) == (D("2.50"), D("0.25"), D("15"))
    untiered = [i.name for i in list_models() if i.tier_threshold is not None and i.name != "gemini-2.5-pro"]
    assert untiered == []


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
        assert info.price_source.strip()
        assert len(info.price_date) >= 7
        assert info.cached_input <= info.input
        assert 0 < info.max_output_tokens <= info.context_window


def test_listing() -> None:
    catalogue = load_catalogue()
    assert tuple(catalogue) == PROVIDERS
    assert model_names("anthropic")[:3] == ["claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-5"]
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
    for name in model_names("anthropic"):
        assert name in message
    assert "gpt-4o" not in message
    assert excinfo.value.valid == model_names("anthropic")
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


# ─────────────────────────────────── catalogue validation ───────────────────────────────────

GOOD_ENTRY = """
[openai."m"]
context_window = 1000
max_output_tokens = 100
input = 1.0
cached_input = 0.5
output = 2
reasoning_model = false
price_source = "test"
price_date = "2026-11-29"
"""


def test_parse_minimal_entry_defaults() -> None:
    info = parse_catalogue(GOOD_ENTRY)["openai"]["m"]
    assert isinstance(info, ModelInfo)
    assert info.cache_write == info.input == D("1.0")  # no separate write price: billed as input
    assert info.reasoning == info.output == D(2)
    assert info.min_cache_tokens is None and info.tier_threshold is None and info.aliases == ()
    assert parse_catalogue(GOOD_ENTRY)["gemini"] == {}


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace("cached_input = 0.5", "cached_inptu = 0.5"), "missing cached_input"),
        (lambda t: t + "cahce_write = 1\n", "unknown key"),
        (lambda t: t.replace("[openai.", "[mistral."), "unknown provider"),
        (lambda t: t.replace("input = 1.0", "input = -1.0"), "non-negative"),
        (lambda t: t.replace("input = 1.0", 'input = "1.0"'), "must be a number"),
        (lambda t: t.replace("context_window = 1000", "context_window = 0"), "positive integer"),
        (lambda t: t.replace("reasoning_model = false", "reasoning_model = 1"), "true or false"),
        (lambda t: t.replace('"2026-11-29"', '"last week"'), "price_date"),
        (lambda t: t + "tier_threshold = 10\ninput_above = 2\n", "must be given together"),
        (lambda t: t + "aliases = ['m']\n", "listed twice"),
        (lambda t: t + "[openai.", "not valid TOML"),
    ],
)
def test_parse_rejects_bad_entries(edit, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(CatalogueError, match=message):
        parse_catalogue(edit(GOOD_ENTRY))


def test_tiered_entry_must_bill_reasoning_as_output() -> None:
    tier = "tier_threshold = 10\ninput_above = 2\ncached_input_above = 1\noutput_above = 4\n"
    text = GOOD_ENTRY + "reasoning = 3\n" + tier
    with pytest.raises(CatalogueError, match="tiered model"):
        parse_catalogue(text)


def test_toml_date_literal_accepted() -> None:
    info = parse_catalogue(GOOD_ENTRY.replace('"2026-11-29"', "2026-11-29"))["openai"]["m"]
    assert info.price_date == "2026-11-29"


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


def test_retires_must_be_a_date() -> None:
    entry = """
[openai."m"]
context_window = 1000
max_output_tokens = 100
input = 1
cached_input = 1
output = 1
reasoning_model = false
price_source = "test"
price_date = "2026-11-29"
retires = "soon"
"""
    with pytest.raises(CatalogueError, match="retires must be a TOML date"):
        parse_catalogue(entry)
