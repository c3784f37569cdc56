"""ScriptRipper settings: one module, driven by environment variables.

Every value comes from the environment (a `.env` file is read when present) and
is parsed loudly by the helpers of scriptripper/env.py: a malformed value raises ImproperlyConfigured at start-up
rather than being silently replaced by a default. Nothing exists only in
production; behaviour switches on variables (see README.md and .env.example).
"""

from __future__ import annotations

from pathlib import Path

from django.core.exceptions import ImproperlyConfigured
from redis.connection import parse_url as parse_redis_url

from scriptripper.env import (
    env, env_bool, env_choice, env_endpoints, env_float, env_host_ports, env_int, env_model_fallbacks, env_rate,
    env_seconds_list,
)
from scriptripper.redis_clients import redis_connection_config, sentinel_addresses

BASE_DIR = Path(__file__).resolve().parent.parent
env.read_env(BASE_DIR / ".env", overwrite=False)

ENVIRONMENT = env_choice("ENVIRONMENT", "development", ("development", "production"))
IS_PRODUCTION = ENVIRONMENT == "production"

if IS_PRODUCTION:
    # No fallback: a production server with a guessable key would sign sessions anyone can forge.
    SECRET_KEY = env.str("SECRET_KEY", default="")
    if not SECRET_KEY:
        raise ImproperlyConfigured("SECRET_KEY must be set when ENVIRONMENT=production")
else:
    SECRET_KEY = env.str("SECRET_KEY", default="dev-insecure-scriptripper-key-not-for-production-use-0123456789")

DEBUG = env_bool("DEBUG", not IS_PRODUCTION)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=[] if IS_PRODUCTION else ["localhost", "127.0.0.1", "[::1]", "testserver"])
if IS_PRODUCTION and not ALLOWED_HOSTS:
    # Without it every request is refused with a 400, which looks like an application bug.
    raise ImproperlyConfigured("ALLOWED_HOSTS must be set when ENVIRONMENT=production (e.g. api.example.com)")
# CORS stays closed: no Access-Control-Allow-* header is ever sent, so browsers refuse
# cross-origin calls. API clients are servers and scripts with a Bearer token.
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    # First: its `runserver` replaces staticfiles' (scriptripper/management/commands/runserver.py), and its
    # templates (the admin's front page, which links the charts) come before the admin's own.
    "scriptripper",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",  # full-text search, array fields and GIN indexes (transcripts)
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_rq",
    "accounts",
    "analysis",
    "transcripts",
    "jobs",
]

MIDDLEWARE = [
    # First: an oversized API body is refused (413) before anything reads it.
    "scriptripper.middleware.RequestSizeLimitMiddleware",
    # Errors that escape a view under /api/ answer in the one error shape (503 for an outage).
    "scriptripper.errors.ApiErrorMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Serves admin and Swagger UI assets from the app itself (works offline, under gunicorn).
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

# Endpoints answer with and without a trailing slash (the URLconf accepts both),
# so CommonMiddleware must never redirect: a redirected POST loses its body.
APPEND_SLASH = False

ROOT_URLCONF = "scriptripper.urls"
WSGI_APPLICATION = "scriptripper.wsgi.application"
ASGI_APPLICATION = "scriptripper.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# Not kept as a setting itself: its password would show wherever settings are listed (Django's debug page).
DEFAULT_DATABASE_URL = "postgresql://localhost:5432/scriptripper"
DATABASES = {"default": env.db_url("DATABASE_URL", default=DEFAULT_DATABASE_URL)}
# Persistent connections, checked before reuse: a PostgreSQL restart must not leave
# a worker holding a dead connection ("connection already closed").
DATABASES["default"]["CONN_MAX_AGE"] = env_int("DB_CONN_MAX_AGE", 60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# Fail fast on an unreachable database (libpq waits forever by default), so that
# /healthz and the API answer instead of hanging.
DATABASES["default"].setdefault("OPTIONS", {}).setdefault("connect_timeout", env_int("DB_CONNECT_TIMEOUT", 5, minimum=1))
# PgBouncer in front of PostgreSQL (README: "PgBouncer"): none (PostgreSQL itself), session or transaction, the
# pool_mode of its [databases] entry. Statement pooling cannot run Django's transactions.
DATABASE_POOL_MODE = env_choice("DATABASE_POOL_MODE", "none", ("none", "session", "transaction"))
if DATABASE_POOL_MODE == "none":
    # The session time zone Django wants, sent with the connection request: otherwise a server whose
    # default is not literally "UTC" (Debian's is "Etc/UTC") costs a SET TIME ZONE round trip on every
    # new connection, and every forked work horse opens one (Django's "Optimizing PostgreSQL's configuration").
    # Behind PgBouncer the time zone is its [databases] entry's `timezone=UTC` instead: it refuses this
    # startup parameter unless told to ignore it, and ignored, Django would SET the time zone on the server
    # connection of the moment, which transaction pooling then hands to other clients.
    DATABASES["default"]["OPTIONS"].setdefault("options", "-c TimeZone=UTC")
if DATABASE_POOL_MODE == "transaction":
    # A server-side cursor lives in the session of one server connection, which a transaction pooler gives to
    # another client once the transaction ends: its next fetch would find no cursor. Prepared statements stay
    # off too: Django passes psycopg prepare_threshold=None unless OPTIONS sets one (manage.py check warns).
    DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "accounts.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
# Dates and times on the server's pages with seconds (scriptripper/formats/en/formats.py).
FORMAT_MODULE_PATH = ["scriptripper.formats"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# Finders at request time (no collectstatic step to forget); fine at this scale.
WHITENOISE_USE_FINDERS = True

# --- Redis and the queues -------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="redis://localhost:6379/0")
if not REDIS_URL.startswith(("redis://", "rediss://", "unix://")):
    raise ImproperlyConfigured(f"REDIS_URL must start with redis://, rediss:// or unix://, got {REDIS_URL!r}")
# Redis behind Sentinel (README: "Redis Sentinel"): set, every Redis client of every process asks these Sentinels
# for the current primary of REDIS_SENTINEL_MASTER, and REDIS_URL only lends its database number.
REDIS_SENTINELS = env_host_ports("REDIS_SENTINELS")
REDIS_SENTINEL_MASTER = env.str("REDIS_SENTINEL_MASTER", default="")
try:
    _redis_url_db = int(parse_redis_url(REDIS_URL).get("db", 0))
except ValueError as exc:
    raise ImproperlyConfigured(f"REDIS_URL: {exc}") from None
REDIS_DB = env_int("REDIS_DB", _redis_url_db)
REDIS_PASSWORD = env.str("REDIS_PASSWORD", default="")
REDIS_SENTINEL_PASSWORD = env.str("REDIS_SENTINEL_PASSWORD", default="")
REDIS_SENTINEL_TLS = env_bool("REDIS_SENTINEL_TLS", False)
if REDIS_SENTINELS and not REDIS_SENTINEL_MASTER:
    raise ImproperlyConfigured("REDIS_SENTINEL_MASTER must name the primary the Sentinels monitor "
                               "(their `sentinel monitor <name> ...`) when REDIS_SENTINELS is set")
# The variables read only with REDIS_SENTINELS set (the tests drop them for a process they give a REDIS_URL alone).
REDIS_SENTINEL_VARIABLES = ("REDIS_SENTINELS", "REDIS_SENTINEL_MASTER", "REDIS_DB", "REDIS_PASSWORD",
                            "REDIS_SENTINEL_PASSWORD", "REDIS_SENTINEL_TLS")
if not REDIS_SENTINELS:
    # REDIS_URL carries its own database, password and scheme: these would be silently ignored.
    _sentinel_only = [name for name in REDIS_SENTINEL_VARIABLES if name not in ("REDIS_SENTINELS", "REDIS_SENTINEL_TLS")
                      and env.str(name, default="")] + (["REDIS_SENTINEL_TLS"] if REDIS_SENTINEL_TLS else [])
    if _sentinel_only:
        raise ImproperlyConfigured(f"{', '.join(_sentinel_only)}: read only with REDIS_SENTINELS set; without it, "
                                   "REDIS_URL says everything (redis://:password@host:port/db, rediss:// for TLS)")
# The connection in django-rq's keys (scriptripper/redis_clients.py): RQ_QUEUES carries it, so django-rq's
# commands and dashboard connect the way the project's own clients do.
_REDIS_CONNECTION = redis_connection_config(
    url=REDIS_URL, sentinels=REDIS_SENTINELS, master=REDIS_SENTINEL_MASTER, db=REDIS_DB, password=REDIS_PASSWORD,
    sentinel_password=REDIS_SENTINEL_PASSWORD, sentinel_tls=REDIS_SENTINEL_TLS)

# A job's RQ timeout must cover the provider retries and rate-limit waits of all
# its tasks (RQ's default of 180 s does not).
JOB_TIMEOUT = env_int("JOB_TIMEOUT", 3600, minimum=60)
RQ_QUEUE_NAMES = ("high", "default", "low")
RQ_QUEUES = {name: {**_REDIS_CONNECTION, "DEFAULT_TIMEOUT": JOB_TIMEOUT} for name in RQ_QUEUE_NAMES}
RQ = {
    # jobs.services enqueues from its own on_commit hook and needs the enqueue to
    # happen right then (to catch a Redis outage), so django-rq must not defer it again.
    "COMMIT_MODE": "auto",
    "WORKER_CLASS": "jobs.worker.ScriptRipperWorker",
}
RQ_SHOW_ADMIN_LINK = True

# Queue routing: pro users with short transcripts go to `high`, very long ones to `low`.
ROUTING_HIGH_MAX_CHARS = env_int("ROUTING_HIGH_MAX_CHARS", 50_000)
ROUTING_LOW_MIN_CHARS = env_int("ROUTING_LOW_MIN_CHARS", 400_000)

# --- Providers ------------------------------------------------------------------
GEMINI_API_KEY = env.str("GEMINI_API_KEY", default="")
OPENAI_API_KEY = env.str("OPENAI_API_KEY", default="")
ANTHROPIC_API_KEY = env.str("ANTHROPIC_API_KEY", default="")
OPENAI_BASE_URL = env.str("OPENAI_BASE_URL", default="")
ANTHROPIC_BASE_URL = env.str("ANTHROPIC_BASE_URL", default="")
GEMINI_BASE_URL = env.str("GEMINI_BASE_URL", default="")
GEMINI_API_VERSION = env.str("GEMINI_API_VERSION", default="")
if GEMINI_API_VERSION not in ("", "v1", "v1beta", "v1alpha"):
    raise ImproperlyConfigured(f"GEMINI_API_VERSION must be v1 or v1beta, got {GEMINI_API_VERSION!r}")

# Named OpenAI-compatible endpoints beside the three providers (README: local models).
OPENAI_COMPATIBLE_ENDPOINTS = env_endpoints(env.str("OPENAI_COMPATIBLE_ENDPOINTS", default=""),
                                            env.str("OPENAI_COMPATIBLE_ENDPOINTS_FILE", default=""))

MAX_PROMPT_TOKENS = env_int("MAX_PROMPT_TOKENS", 0)
MODEL_CONTEXT_OVERRIDES_RAW = env.str("MODEL_CONTEXT_OVERRIDES", default="")
ALLOW_UNLISTED_MODELS = env_bool("ALLOW_UNLISTED_MODELS", False)

PROVIDER_REQUEST_TIMEOUT = env_float("PROVIDER_REQUEST_TIMEOUT", 300.0, minimum=1.0)
PROVIDER_MAX_TRIES = env_int("PROVIDER_MAX_TRIES", 6, minimum=1)
PROVIDER_RETRY_BASE_DELAY = env_float("PROVIDER_RETRY_BASE_DELAY", 1.0)
PROVIDER_RETRY_MAX_DELAY = env_float("PROVIDER_RETRY_MAX_DELAY", 60.0)
# The most time one task spends on its provider calls, retries and waits included (a bounded task).
PROVIDER_RETRY_MAX_TOTAL = env_float("PROVIDER_RETRY_MAX_TOTAL", 600.0, minimum=1.0)
PROVIDER_MAX_IN_FLIGHT = env_int("PROVIDER_MAX_IN_FLIGHT", 32, minimum=0)
PROVIDER_MAX_PER_MINUTE = env_int("PROVIDER_MAX_PER_MINUTE", 0)
TASK_CONCURRENCY = env_int("TASK_CONCURRENCY", 8, minimum=1)
# Map calls of one chunked task at once (a transcript longer than the model's context).
CHUNK_CONCURRENCY = env_int("CHUNK_CONCURRENCY", 16, minimum=1)
CHUNK_OVERLAP_TOKENS = env_int("CHUNK_OVERLAP_TOKENS", 200)
# A question across meetings whose scope does not fit one request searches it (transcripts/retrieval.py): it reads
# the hits best first, each with this many turns either side, up to this many tokens of turns in all (more than
# one request holds: map-reduce over meetings).
ASK_READ_TOKENS = env_int("ASK_READ_TOKENS", 40_000, minimum=1_000)
ASK_NEIGHBOUR_TURNS = env_int("ASK_NEIGHBOUR_TURNS", 2)
DEFAULT_MAX_OUTPUT_TOKENS = env_int("DEFAULT_MAX_OUTPUT_TOKENS", 8192, minimum=1)

# --- Limits ---------------------------------------------------------------------
MAX_REQUEST_BYTES = env_int("MAX_REQUEST_BYTES", 10 * 1024 * 1024, minimum=1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_REQUEST_BYTES
FILE_UPLOAD_MAX_MEMORY_SIZE = MAX_REQUEST_BYTES
MAX_TRANSCRIPT_CHARS = env_int("MAX_TRANSCRIPT_CHARS", 5_000_000, minimum=1)
MAX_TRANSCRIPT_TOKENS = env_int("MAX_TRANSCRIPT_TOKENS", 1_500_000, minimum=1)
MAX_TASKS = env_int("MAX_TASKS", 20, minimum=1)
MAX_TASK_NAME_CHARS = env_int("MAX_TASK_NAME_CHARS", 100, minimum=1)
MAX_PROMPT_CHARS = env_int("MAX_PROMPT_CHARS", 10_000, minimum=1)
MAX_SYSTEM_PROMPT_CHARS = env_int("MAX_SYSTEM_PROMPT_CHARS", 20_000, minimum=1)

# --- Model fallbacks and provider health (analysis/engine/fallbacks.py, runner.py, health.py) ---------------
# Fallback chains per model, used by the jobs on that model that name none (JSON {"model": [{"provider", "model"}]}).
MODEL_FALLBACKS = env_model_fallbacks("MODEL_FALLBACKS")
# With a chain, the seconds a model may go on failing for one task (from its first failed try) before the task moves
# to its next model; the chain's last model has the rest of PROVIDER_RETRY_MAX_TOTAL.
FALLBACK_AFTER_SECONDS = env_float("FALLBACK_AFTER_SECONDS", 30.0)
# A model's circuit opens after this many consecutive failures (5xx, 429, timeouts, refused keys, ...), for
# CIRCUIT_COOLDOWN_SECONDS, doubled after each failed probe up to CIRCUIT_COOLDOWN_MAX_SECONDS.
CIRCUIT_FAILURE_THRESHOLD = env_int("CIRCUIT_FAILURE_THRESHOLD", 5, minimum=1)
CIRCUIT_COOLDOWN_SECONDS = env_float("CIRCUIT_COOLDOWN_SECONDS", 30.0, minimum=0.1)
CIRCUIT_COOLDOWN_MAX_SECONDS = env_float("CIRCUIT_COOLDOWN_MAX_SECONDS", 300.0, minimum=0.1)
if CIRCUIT_COOLDOWN_MAX_SECONDS < CIRCUIT_COOLDOWN_SECONDS:
    raise ImproperlyConfigured(f"CIRCUIT_COOLDOWN_MAX_SECONDS ({CIRCUIT_COOLDOWN_MAX_SECONDS:g}) must not be below "
                               f"CIRCUIT_COOLDOWN_SECONDS ({CIRCUIT_COOLDOWN_SECONDS:g})")

# --- Processing modes: flex and batch (analysis/engine/processing.py, jobs/worker/provider_batch_poller.py) ---------
# The processing of a `low` job that names none: standard (the default), or batch / flex where the
# model has that price (else standard: a deployment default never turns into a refused job).
LOW_QUEUE_PROCESSING = env_choice("LOW_QUEUE_PROCESSING", "standard", ("standard", "flex", "batch"))
# Seconds one flex request may take: flex is best-effort and slow (OpenAI advises 15 minutes).
FLEX_REQUEST_TIMEOUT = env_float("FLEX_REQUEST_TIMEOUT", 900.0, minimum=1.0)
# The longest a batch job waits for its provider batches, from its first submission; then its fallback applies.
BATCH_MAX_WAIT = env_float("BATCH_MAX_WAIT", 24 * 3600.0, minimum=1.0)
# Seconds between the batch poller's rounds (inside every worker, one at a time): submit, poll, collect.
BATCH_POLL_INTERVAL_SECONDS = env_float("BATCH_POLL_INTERVAL_SECONDS", 30.0, minimum=0.1)
# Requests in one provider batch at most (the providers allow 50,000 to 100,000).
BATCH_MAX_REQUESTS = env_int("BATCH_MAX_REQUESTS", 10_000, minimum=1)

# The RQ job timeout must outlast the slowest job the other settings allow, or RQ kills
# a job still waiting out a provider's Retry-After. A task's calls, retries, waits and
# slot waits all end by PROVIDER_RETRY_MAX_TOTAL (analysis/engine/retry.py), plus the one try
# still in flight (PROVIDER_REQUEST_TIMEOUT, or FLEX_REQUEST_TIMEOUT for a flex job); tasks run TASK_CONCURRENCY at a time, so
# MAX_TASKS of them take at most ceil(MAX_TASKS / TASK_CONCURRENCY) such rounds; 60 s
# cover saving. Defaults: 3 x (600 + 900) + 60 = 4,560 s.
# JOB_TIMEOUT unset: the larger of 3,600 and that bound; set below it: refused.
_SLOWEST_REQUEST = max(PROVIDER_REQUEST_TIMEOUT, FLEX_REQUEST_TIMEOUT)
JOB_TIMEOUT_MIN = int(-(-MAX_TASKS // TASK_CONCURRENCY) * (PROVIDER_RETRY_MAX_TOTAL + _SLOWEST_REQUEST)) + 60
if not env.str("JOB_TIMEOUT", default=""):
    JOB_TIMEOUT = max(JOB_TIMEOUT, JOB_TIMEOUT_MIN)
elif JOB_TIMEOUT < JOB_TIMEOUT_MIN:
    raise ImproperlyConfigured(
        f"JOB_TIMEOUT={JOB_TIMEOUT} is shorter than the slowest job the other settings allow "
        f"({JOB_TIMEOUT_MIN} s = ceil(MAX_TASKS / TASK_CONCURRENCY) x (PROVIDER_RETRY_MAX_TOTAL + "
        f"max(PROVIDER_REQUEST_TIMEOUT, FLEX_REQUEST_TIMEOUT)) + 60): raise it or lower those")
for _queue in RQ_QUEUES.values():
    _queue["DEFAULT_TIMEOUT"] = JOB_TIMEOUT

# --- Durability -----------------------------------------------------------------
JOB_MAX_ATTEMPTS = env_int("JOB_MAX_ATTEMPTS", 3, minimum=1)
JOB_HEARTBEAT_SECONDS = env_float("JOB_HEARTBEAT_SECONDS", 5.0, minimum=0.1)
JOB_LEASE_SECONDS = env_float("JOB_LEASE_SECONDS", 30.0, minimum=1.0)
RECONCILE_INTERVAL_SECONDS = env_float("RECONCILE_INTERVAL_SECONDS", 30.0, minimum=0.5)
# A worker told to stop (SIGTERM) lets in-flight provider calls finish for this long
# (they are paid for), then hands the job back; keep it under the orchestrator's kill delay.
WORKER_SHUTDOWN_GRACE_SECONDS = env_float("WORKER_SHUTDOWN_GRACE_SECONDS", 8.0)

# --- The worker process (jobs/worker/workers.py) ----------------------------------------
# Jobs one `rqworker` process holds in flight at once (each waits on provider calls).
WORKER_CONCURRENCY = env_int("WORKER_CONCURRENCY", 32, minimum=1)
# Of those, slots only `high` may take, so a worker full of long `low` jobs still starts a `high` one.
WORKER_HIGH_RESERVED_SLOTS = env_int("WORKER_HIGH_RESERVED_SLOTS", WORKER_CONCURRENCY // 4)
# PostgreSQL connections one worker process opens at most, whatever WORKER_CONCURRENCY (every ORM
# statement of its jobs runs on this many database threads): plan max_connections with it.
WORKER_DB_CONNECTIONS = env_int("WORKER_DB_CONNECTIONS", 8, minimum=1)
# Provider requests one worker process sends at once, for all its jobs.
WORKER_CALL_THREADS = env_int("WORKER_CALL_THREADS", 64, minimum=1)
# HTTP connections each provider's SDK client keeps (0: WORKER_CALL_THREADS, so every call thread has one). Set
# lower, the calls above it would wait inside the client's pool, where the request timeout runs without a request
# on the wire: refused. PROVIDER_MAX_IN_FLIGHT (or an endpoint's max_in_flight) is the bound to lower instead.
PROVIDER_HTTP_CONNECTIONS = env_int("PROVIDER_HTTP_CONNECTIONS", 0, minimum=0)
if PROVIDER_HTTP_CONNECTIONS and PROVIDER_HTTP_CONNECTIONS < WORKER_CALL_THREADS:
    raise ImproperlyConfigured(
        f"PROVIDER_HTTP_CONNECTIONS={PROVIDER_HTTP_CONNECTIONS} is below WORKER_CALL_THREADS={WORKER_CALL_THREADS}: "
        "calls would wait for a connection while their timeout runs. Leave it unset (it follows WORKER_CALL_THREADS), "
        "or bound the requests with PROVIDER_MAX_IN_FLIGHT instead.")
# Recycle the worker gracefully after this many jobs, or once its RSS passes this many MiB (0: never).
WORKER_MAX_JOBS = env_int("WORKER_MAX_JOBS", 0)
WORKER_MAX_MEMORY_MB = env_int("WORKER_MAX_MEMORY_MB", 0)
# Final jobs older than this are deleted by the reconciler (0: keep forever).
JOB_RETENTION_DAYS = env_int("JOB_RETENTION_DAYS", 30)
# A finished task's output is reused for an identical task of the same owner within this window (0: never).
RESULT_REUSE_TTL_SECONDS = env_int("RESULT_REUSE_TTL_SECONDS", 24 * 3600)
IDEMPOTENCY_TTL_SECONDS = env_int("IDEMPOTENCY_TTL_SECONDS", 24 * 3600, minimum=1)

# --- Spending ---------------------------------------------------------------------
# Monthly budgets in USD per plan; a user's own `monthly_budget` overrides them.
PLAN_MONTHLY_BUDGETS = {
    "free": env_float("FREE_MONTHLY_BUDGET", 5.0),
    "pro": env_float("PRO_MONTHLY_BUDGET", 500.0),
}

# --- Throttling ---------------------------------------------------------------------
# Per user and plan; counted in Redis (CACHES below) so all API processes share the counts.
# "submit": job submissions (analyze, batch); "api": every authenticated API request.
THROTTLE_RATES = {
    "free": {"submit": env_rate("FREE_SUBMIT_RATE", "20/min"), "api": env_rate("FREE_API_RATE", "600/min")},
    "pro": {"submit": env_rate("PRO_SUBMIT_RATE", "120/min"), "api": env_rate("PRO_API_RATE", "3000/min")},
}
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "sr-cache",
        # Fail fast: the throttles let requests through when Redis does not answer.
        "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
    }
}
if REDIS_SENTINELS:
    # Django's RedisCache builds its pools from URLs and knows no Sentinel; this one asks them for the primary.
    CACHES["default"].update({
        "BACKEND": "scriptripper.cache.SentinelRedisCache",
        "LOCATION": sentinel_addresses(REDIS_SENTINELS),
    })
    CACHES["default"]["OPTIONS"]["connection"] = _REDIS_CONNECTION

# --- Webhooks -------------------------------------------------------------------
WEBHOOK_ALLOW_PRIVATE_URLS = env_bool("WEBHOOK_ALLOW_PRIVATE_URLS", False)
WEBHOOK_TIMEOUT_SECONDS = env_float("WEBHOOK_TIMEOUT_SECONDS", 10.0, minimum=0.1)


# Delays before the 2nd, 3rd, ... delivery attempt of a webhook (default: 9 attempts over about 73 minutes).
WEBHOOK_RETRY_DELAYS = env_seconds_list("WEBHOOK_RETRY_DELAYS", "30,60,120,300,600,900,1200,1200")

# --- API ------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["accounts.authentication.BearerTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["scriptripper.parsers.JSONParser"],
    "DEFAULT_THROTTLE_CLASSES": ["accounts.throttling.ApiRateThrottle", "accounts.throttling.SubmitRateThrottle"],
    "DEFAULT_RENDERER_CLASSES": ["scriptripper.renderers.JSONRenderer"],
    "EXCEPTION_HANDLER": "scriptripper.errors.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "ScriptRipper API",
    "DESCRIPTION": "Analyze transcripts with LLMs, in the background.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "scriptripper.schema.add_standard_error_responses",
    ],
}

# --- Production hardening (switched by ENVIRONMENT, not by a separate file) ------
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if IS_PRODUCTION else None
SESSION_COOKIE_SECURE = IS_PRODUCTION
CSRF_COOKIE_SECURE = IS_PRODUCTION
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", IS_PRODUCTION)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000 if IS_PRODUCTION else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = IS_PRODUCTION
SECURE_HSTS_PRELOAD = IS_PRODUCTION
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# Retry-After of the 503 that answers an API request while PostgreSQL or Redis does not.
OUTAGE_RETRY_AFTER_SECONDS = env_int("OUTAGE_RETRY_AFTER_SECONDS", 5, minimum=1)

# --- Operations: /healthz, /metrics, the job list ----------------------------------
# /metrics is open unless this is set; then it wants `Authorization: Bearer <METRICS_TOKEN>`.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
# Duration histograms cover the jobs and tasks that ended within this window.
METRICS_WINDOW_SECONDS = env_int("METRICS_WINDOW_SECONDS", 86_400, minimum=60)
# Socket timeout of the Redis checks in /healthz, /metrics and /api/v1/queues.
HEALTHZ_TIMEOUT_SECONDS = env_float("HEALTHZ_TIMEOUT_SECONDS", 1.0, minimum=0.05)
# An idle RQ worker heartbeats about every 405 s (its worker_ttl of 420 s - 15),
# and its registration expires at 480 s: "seen recently" must allow that much.
HEALTHZ_WORKER_MAX_AGE_SECONDS = env_float("HEALTHZ_WORKER_MAX_AGE_SECONDS", 480.0, minimum=1.0)
# --- Reports and their share links (jobs/sharing.py) --------------------------------
# Days a share link of a job's report works (POST /api/v1/jobs/{id}/share); DELETE ends them all sooner.
SHARE_LINK_DAYS = env_int("SHARE_LINK_DAYS", 30, minimum=1)
# The address clients reach this server at (https://scriptripper.example.com, behind a proxy): share links are
# built on it. Empty: the request's own address, and a path without one where there is no request (the
# webhook body, `analyze --json`).
PUBLIC_BASE_URL = env.str("PUBLIC_BASE_URL", default="").strip().rstrip("/")
if PUBLIC_BASE_URL and not PUBLIC_BASE_URL.startswith(("http://", "https://")):
    raise ImproperlyConfigured(f"PUBLIC_BASE_URL must start with http:// or https://, got {PUBLIC_BASE_URL!r}")

JOBS_PAGE_SIZE = env_int("JOBS_PAGE_SIZE", 20, minimum=1)
JOBS_MAX_PAGE_SIZE = env_int("JOBS_MAX_PAGE_SIZE", 100, minimum=1)
# Pages of GET /api/v1/transcripts and of GET /api/v1/search (`limit` up to the maximum).
TRANSCRIPTS_PAGE_SIZE = env_int("TRANSCRIPTS_PAGE_SIZE", 20, minimum=1)
TRANSCRIPTS_MAX_PAGE_SIZE = env_int("TRANSCRIPTS_MAX_PAGE_SIZE", 100, minimum=1)
# The longest search query (`q` of GET /api/v1/search and GET /api/v1/transcripts), in characters.
SEARCH_MAX_QUERY_CHARS = env_int("SEARCH_MAX_QUERY_CHARS", 300, minimum=1)
# Probes speak plain HTTP to the container; an HTTPS redirect would fail them.
SECURE_REDIRECT_EXEMPT = [r"^healthz/?$", r"^metrics/?$"]

# --- Logging ----------------------------------------------------------------------
LOG_LEVEL = env_choice("LOG_LEVEL", "info", ("debug", "info", "warning", "error")).upper()
# JSON lines (one object per record, with job_id and task fields) for log collectors.
LOG_FORMAT = env_choice("LOG_FORMAT", "json" if IS_PRODUCTION else "plain", ("plain", "json"))
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "scriptripper.logs.JsonFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # The SDKs log request details at debug; keep them out unless asked for.
        "httpx": {"level": "WARNING"},
        "httpx2": {"level": "WARNING"},
        "rq.worker": {"level": LOG_LEVEL},
    },
}
