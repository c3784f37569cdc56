"""gunicorn's own settings, read from the working directory (scripts/run.sh, the Docker image).

With LOG_FORMAT=json (the default when ENVIRONMENT=production, as in settings.py), gunicorn's
access and error lines are JSON objects like the application's (scriptripper.logs), with the
request's method, path, status and duration as fields, instead of Apache-style text.
"""

import os

_production = os.environ.get("ENVIRONMENT", "development").strip().lower() == "production"
if os.environ.get("LOG_FORMAT", "json" if _production else "plain").strip().lower() == "json":
    logconfig_dict = {
        "formatters": {"json": {"()": "scriptripper.logs.JsonFormatter"}},
        "handlers": {
            "access": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stdout"},
            "error": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"},
        },
        "loggers": {
            # propagate: False, or the application's root handler would print every line twice.
            "gunicorn.access": {"level": "INFO", "handlers": ["access"], "propagate": False},
            "gunicorn.error": {"level": "INFO", "handlers": ["error"], "propagate": False},
        },
        "root": {"level": "INFO", "handlers": ["error"]},
    }


def post_worker_init(worker):
    """Once a worker has loaded the application, its objects (Django, DRF, the SDKs) live as long as the
    process: frozen, a full garbage collection does not walk them, so no request waits on the GIL while one
    does (the API's tail latency: bench/run.py's API case, figures in bench/results/)."""
    import gc

    gc.freeze()
