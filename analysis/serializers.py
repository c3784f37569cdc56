"""Input and output shapes of the profile endpoints."""

from __future__ import annotations

import re

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.fields import SkipField

from analysis.clients import provider_names, unknown_provider
from analysis.engine import structured
from analysis.engine.estimate import Estimate
from analysis.engine.fallbacks import MAX_FALLBACK_MODELS, ChainError, parse_chain
from analysis.engine.health import STATES
from analysis.engine.model_info import RATE_KINDS
from analysis.engine.pricing import price_unknown_note
from analysis.engine.processing import FALLBACKS, PROCESSING_MODES
from analysis.models import AnalysisProfile
from scriptripper.output_fields import MoneyField, OptionalBooleanField, OptionalCharField
from scriptripper.parsers import loads_checked

# Names are what clients type in `"profile": "meeting-notes"`: letters, digits, - _ . and spaces,
# never all digits (a number refers to a profile's id).
_PROFILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.\-]*$")


def _no_nul(value: str, what: str) -> str:
    if "\x00" in value:
        raise serializers.ValidationError(f"{what} must not contain NUL characters")
    return value


PROFILE_TASK_SCHEMA = {"type": "object", "required": ["name", "prompt"], "properties": {
    "name": {"type": "string"}, "prompt": {"type": "string"},
    "schema": {"type": "object", "description": "JSON Schema (Draft 2020-12, an object at the root) the answer follows"},
    "cite": {"type": "boolean", "description": "a text answer with machine-readable citations beside it"},
    "text_prompt": {"type": "string", "description": 'the free-text wording used with "structured": false'}}}


STRUCTURED_KEYS = ("schema", "cite", "text_prompt")


def _structured_keys(item: dict, *, index: int, name: str) -> dict:
    """A profile task's schema, cite flag and free-text wording, checked as analyze checks them."""
    extra = {key: item[key] for key in STRUCTURED_KEYS if key in item and item[key] is not None}
    if not extra:
        return {}
    text_prompt = extra.pop("text_prompt", None)
    if text_prompt is not None and (not isinstance(text_prompt, str) or not text_prompt.strip()):
        raise serializers.ValidationError(f"tasks[{index}]: text_prompt must be a non-empty string")
    try:
        request = structured.task_object({"prompt": item["prompt"], **extra}, name=name)
    except structured.TaskSpecError as exc:
        raise serializers.ValidationError(f"tasks[{index}]: {exc.field + ' ' if exc.field else ''}{exc}") from None
    checked: dict = {}
    if request.schema is not None:
        checked["schema"] = request.schema
    if request.cite:
        checked["cite"] = True
    if text_prompt is not None:
        checked["text_prompt"] = _no_nul(text_prompt, "prompts")
    return checked


def validate_provider_name(value: str) -> str:
    """A provider or configured endpoint's name, lower-cased; a field error naming the choices otherwise."""
    value = value.strip().lower()
    if value not in provider_names():
        raise serializers.ValidationError(unknown_provider(value))
    return value


class PriceNoteField(serializers.CharField):
    """The note beside costs of 0 that mean "unknown", not "free": on anything with `provider`, `model` and
    `price_unknown` (an estimate, a job). Left out when the price is known."""

    def __init__(self, **kwargs) -> None:
        super().__init__(source="*", required=False, **kwargs)

    def get_attribute(self, instance) -> str:
        if not instance.price_unknown:
            raise SkipField()
        return price_unknown_note(instance.provider, instance.model)


def validate_language_tag(value: str) -> str:
    """A BCP 47 tag as given (en, pt-BR), "" for none; a field error otherwise (profiles and jobs)."""
    if not value.strip():
        return ""
    try:
        return structured.check_language(value)
    except structured.TaskSpecError as exc:
        raise serializers.ValidationError(str(exc)) from None


FALLBACK_MODEL_SCHEMA = {"type": "object", "required": ["provider", "model"], "additionalProperties": False,
                         "properties": {"provider": {"type": "string", "maxLength": 32},
                                        "model": {"type": "string", "maxLength": 100}}}


@extend_schema_field({"type": "array", "maxItems": MAX_FALLBACK_MODELS, "items": FALLBACK_MODEL_SCHEMA,
                      "example": [{"provider": "anthropic", "model": "claude-haiku-4-5"}]})
class FallbackModelsField(serializers.Field):
    """`fallback_models` of a job or a profile: [{"provider", "model"}], at most MAX_FALLBACK_MODELS
    (analysis/engine/fallbacks.py), its shape only (the submission checks that each can run). An entry at fault is
    named `fallback_models[i]`. A multipart form sends it as a JSON string."""

    def to_internal_value(self, data):
        if isinstance(data, str):
            try:
                data = loads_checked(data)
            except ValueError:
                pass  # parse_chain says what was expected
        try:
            return parse_chain(data)
        except ChainError as exc:
            if exc.index is None:
                raise serializers.ValidationError(str(exc)) from None
            # A list error at the entry's index: the error shape names it `fallback_models[i]`.
            raise serializers.ValidationError([{}] * exc.index + [[str(exc)]]) from None

    def to_representation(self, value):
        return value


@extend_schema_field({"type": "array", "items": PROFILE_TASK_SCHEMA})
class ProfileTasksField(serializers.Field):
    """An ordered list of {"name", "prompt"}; an object {name: prompt} is accepted too (order kept)."""

    default_error_messages = {
        "type": 'must be a list of {{"name": ..., "prompt": ...}} objects',
    }

    def to_internal_value(self, data):
        if isinstance(data, dict):
            data = [{"name": name, "prompt": prompt} for name, prompt in data.items()]
        if not isinstance(data, list):
            self.fail("type")
        if not data:
            raise serializers.ValidationError("at least one task is required")
        if len(data) > settings.MAX_TASKS:
            raise serializers.ValidationError(f"at most {settings.MAX_TASKS} tasks per profile (got {len(data)})")
        tasks: list[dict[str, str]] = []
        seen: set[str] = set()
        for index, item in enumerate(data):
            if not isinstance(item, dict) or set(item) - {"name", "prompt", *STRUCTURED_KEYS}:
                raise serializers.ValidationError(f'tasks[{index}] must be an object {{"name": ..., "prompt": ...}}')
            name, prompt = item.get("name"), item.get("prompt")
            if not isinstance(name, str) or not name.strip():
                raise serializers.ValidationError(f"tasks[{index}]: name must be a non-empty string")
            name = name.strip()
            if len(name) > settings.MAX_TASK_NAME_CHARS:
                raise serializers.ValidationError(
                    f"tasks[{index}]: name is longer than {settings.MAX_TASK_NAME_CHARS} characters")
            if name in seen:
                raise serializers.ValidationError(f"tasks[{index}]: the task name {name!r} is used twice")
            seen.add(name)
            if not isinstance(prompt, str) or not prompt.strip():
                raise serializers.ValidationError(f"tasks[{index}]: prompt must be a non-empty string")
            if len(prompt) > settings.MAX_PROMPT_CHARS:
                raise serializers.ValidationError(
                    f"tasks[{index}]: prompt is {len(prompt)} characters; the limit is {settings.MAX_PROMPT_CHARS}")
            entry = {"name": _no_nul(name, "task names"), "prompt": _no_nul(prompt, "prompts")}
            entry.update(_structured_keys(item, index=index, name=name))
            tasks.append(entry)
        return tasks

    def to_representation(self, value):
        return value


class ProfileInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    description = serializers.CharField(required=False, allow_blank=True, max_length=2000)
    system_prompt = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    tasks = ProfileTasksField()
    default_provider = serializers.CharField(required=False, allow_blank=True)
    default_model = serializers.CharField(required=False, allow_blank=True, max_length=100)
    language = serializers.CharField(required=False, allow_blank=True, max_length=35,
                                     help_text="BCP 47 tag every answer is written in; empty: the transcript's")
    processing = serializers.ChoiceField(choices=("", *PROCESSING_MODES), required=False, allow_blank=True,
                                         help_text="the processing mode of its jobs when the request names none")
    fallback = serializers.ChoiceField(choices=("", *FALLBACKS), required=False, allow_blank=True,
                                       help_text="the fallback of its jobs when the request names none")
    fallback_models = FallbackModelsField(
        required=False, allow_null=True,
        help_text='the fallback chain of its jobs when the request names none ([{"provider", "model"}], at most 3; '
                  "[]: none, not even the server's MODEL_FALLBACKS; null: the server's)")

    def validate_language(self, value: str) -> str:
        return validate_language_tag(value)

    def validate_name(self, value: str) -> str:
        if not _PROFILE_NAME.match(value) or value.isdigit():
            raise serializers.ValidationError(
                "use letters, digits, spaces, '-', '_' or '.', starting with a letter or digit, and not only digits")
        return value

    def validate_description(self, value: str) -> str:
        return _no_nul(value, "the description")

    def validate_system_prompt(self, value: str) -> str:
        if len(value) > settings.MAX_SYSTEM_PROMPT_CHARS:
            raise serializers.ValidationError(f"is longer than {settings.MAX_SYSTEM_PROMPT_CHARS} characters")
        return _no_nul(value, "the system prompt")

    def validate_default_provider(self, value: str) -> str:
        return validate_provider_name(value) if value.strip() else ""

    def validate_default_model(self, value: str) -> str:
        return value.strip()


class ProfileOutputSerializer(serializers.ModelSerializer):
    builtin = serializers.BooleanField(source="is_builtin", read_only=True)
    tasks = serializers.ListField(child=serializers.DictField())
    fallback_models = serializers.ListField(child=serializers.DictField(child=serializers.CharField()),
                                            allow_null=True)

    class Meta:
        model = AnalysisProfile
        fields = ["id", "name", "description", "system_prompt", "tasks", "default_provider", "default_model",
                  "language", "processing", "fallback", "fallback_models", "builtin", "created_at", "updated_at"]
        read_only_fields = fields


class ProfileListSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    results = ProfileOutputSerializer(many=True)


# --- GET /api/v1/models ------------------------------------------------------------------------------


# A tier is its threshold and one rate of every kind (ModelInfo.as_dict: {"above", **rates}).
ModelTierSerializer = type("ModelTierSerializer", (serializers.Serializer,), {
    "__module__": __name__,  # else DRF's metaclass names its own
    "above": serializers.IntegerField(
        help_text="a request whose prompt is more than this many tokens pays these rates"),
    **{kind: serializers.FloatField() for kind in RATE_KINDS}})


class ModelPriceSetSerializer(serializers.Serializer):
    input = serializers.FloatField()
    cached_input = serializers.FloatField(required=False)
    output = serializers.FloatField()


class ModelHealthSerializer(serializers.Serializer):
    """A model's health as every worker sees it (analysis/engine/health.py)."""

    state = serializers.ChoiceField(choices=STATES, help_text=(
        "ok; degraded: failing lately (consecutive failures below the circuit's threshold); open: its circuit is "
        "open, no request goes to it (tasks with a fallback chain move on, the others wait for its probe)"))
    since = serializers.DateTimeField(allow_null=True, help_text="when this state began (null: nothing on record)")
    failures = serializers.IntegerField(help_text="consecutive failures")
    last_error_kind = serializers.CharField(allow_null=True, help_text="rate_limit, server_error, timeout, auth, ...")
    last_error_at = serializers.DateTimeField(allow_null=True)
    next_probe_at = serializers.DateTimeField(allow_null=True, help_text="open: when the next probe may go out")


class ModelOutputSerializer(serializers.Serializer):
    """One usable model. Prices are USD per million tokens, as JSON numbers, for display: bills are computed
    from the exact Decimals (analysis.engine.pricing)."""

    provider = serializers.CharField(help_text="gemini, openai, anthropic, or a configured endpoint's name")
    name = serializers.CharField(help_text='the id to send as "model" ("*": an endpoint that takes any model)')
    display_name = serializers.CharField(allow_null=True)
    aliases = serializers.ListField(child=serializers.CharField(), help_text="other exact ids that bill as this one")
    listed = serializers.BooleanField()
    price_unknown = serializers.BooleanField(help_text="no price known: jobs cost 0 and say so")
    configured = serializers.BooleanField(help_text="whether this server has a key for the provider")
    endpoint = serializers.BooleanField(default=False, help_text="served by a configured OpenAI-compatible endpoint")
    context_window = serializers.IntegerField(help_text="most prompt tokens one request may carry")
    total_context = serializers.IntegerField(allow_null=True, help_text="the whole context, when an input cap is lower")
    max_output_tokens = serializers.IntegerField()
    reasoning_model = serializers.BooleanField()
    accepts_temperature = serializers.BooleanField()
    structured_output = serializers.BooleanField(help_text="takes a JSON Schema (tasks with a schema or citations)")
    min_cache_tokens = serializers.IntegerField(allow_null=True)
    price_unit = serializers.CharField()
    input = serializers.FloatField()
    cached_input = serializers.FloatField()
    cache_write = serializers.FloatField()
    cache_write_1h = serializers.FloatField(allow_null=True)
    output = serializers.FloatField()
    reasoning = serializers.FloatField()
    tier_threshold = serializers.IntegerField(allow_null=True)
    input_above = serializers.FloatField(allow_null=True)
    cached_input_above = serializers.FloatField(allow_null=True)
    output_above = serializers.FloatField(allow_null=True)
    tiers = ModelTierSerializer(many=True, help_text="long-prompt tiers in force now, ascending")
    flex = ModelPriceSetSerializer(allow_null=True)
    batch = ModelPriceSetSerializer(allow_null=True)
    price_source = serializers.CharField()
    price_date = serializers.CharField(help_text='first day of the price in force ("" when the data gives none)')
    deprecated = serializers.BooleanField()
    retires_on = serializers.DateField(allow_null=True, help_text="served until this day, refused from the next")
    sources = serializers.ListField(child=serializers.CharField(), help_text="where the overlay's figures come from")
    health = ModelHealthSerializer()


class ModelListOutputSerializer(serializers.Serializer):
    prices_version = serializers.CharField(help_text="the genai-prices version the prices come from")
    models = ModelOutputSerializer(many=True)


# --- POST /api/v1/jobs/estimate ------------------------------------------------------------------


class TaskEstimateSerializer(serializers.Serializer):
    calls = serializers.IntegerField()
    chunks = serializers.IntegerField()
    input_tokens = serializers.IntegerField()
    cost_low = MoneyField()
    cost_high = MoneyField()
    error = OptionalCharField()


class ModeCostSerializer(serializers.Serializer):
    cost_low = MoneyField()
    cost_high = MoneyField()


class ChainModelCostSerializer(serializers.Serializer):
    provider = serializers.CharField()
    model = serializers.CharField()
    cost_low = MoneyField()
    cost_high = MoneyField()
    price_unknown = OptionalBooleanField()


class JobEstimateSerializer(serializers.Serializer):
    """What an analyze request would read and could cost, before anything runs (analysis.engine.estimate)."""

    provider = serializers.CharField()
    model = serializers.CharField()
    token_count = serializers.ChoiceField(choices=["exact", "approximate"])
    context_tokens = serializers.IntegerField()
    transcript_tokens = serializers.IntegerField()
    calls = serializers.IntegerField()
    input_tokens = serializers.IntegerField()
    max_output_tokens = serializers.IntegerField()
    max_output_tokens_total = serializers.IntegerField()
    cost_low = MoneyField(help_text="USD: every input cached where the provider can, 1 output token a call")
    cost_high = MoneyField(help_text="USD: nothing cached, every call using its whole output limit")
    currency = serializers.SerializerMethodField()
    processing = serializers.ChoiceField(choices=PROCESSING_MODES, help_text="the mode cost_low and cost_high are priced in")
    by_processing = serializers.SerializerMethodField(
        help_text="the same calls priced in every processing mode the model offers (standard, flex, batch)")
    tasks = serializers.SerializerMethodField()
    fallback_models = ChainModelCostSerializer(source="fallbacks", many=True, help_text=(
        "the same job priced on each model of its fallback chain alone, in the mode that model would run it"))
    chain_cost_low = MoneyField(help_text="USD: the least the job can cost on any model of its chain")
    chain_cost_high = MoneyField(help_text=(
        "USD: the most it can cost on the chain's most expensive model (what the budget and max_cost checks use)"))
    price_unknown = OptionalBooleanField()
    note = PriceNoteField()

    def get_currency(self, estimate: Estimate) -> str:
        return "USD"

    @extend_schema_field(serializers.DictField(child=ModeCostSerializer()))
    def get_by_processing(self, estimate: Estimate) -> dict:
        return {mode: ModeCostSerializer(costs).data for mode, costs in estimate.by_processing.items()}

    @extend_schema_field(serializers.DictField(child=TaskEstimateSerializer()))
    def get_tasks(self, estimate: Estimate) -> dict:
        return {task.name: TaskEstimateSerializer(task).data for task in estimate.tasks}
