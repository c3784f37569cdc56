"""Settings for RQ's own command line, on the project's Redis: `rq info -c scriptripper.rq_cli`,
`rq suspend -c scriptripper.rq_cli`, `rq resume ...` (or RQ_CONFIG=scriptripper.rq_cli), run from the project
directory.

RQ reads the upper-case names of this module: REDIS_URL, or with REDIS_SENTINELS set its SENTINEL dict, so
its commands reach the current primary through the Sentinels as the workers do. The values are the project's
settings (the environment and .env, through scriptripper/settings.py), never written twice.
"""

from __future__ import annotations

from scriptripper import settings as _project

_connection = _project.RQ_QUEUES["default"]

if "SENTINELS" in _connection:
    SENTINEL = {
        "INSTANCES": [tuple(address) for address in _connection["SENTINELS"]],
        "MASTER_NAME": _connection["MASTER_NAME"],
        "DB": _connection["DB"],
        "PASSWORD": _connection["PASSWORD"],
        "SENTINEL_KWARGS": _connection["SENTINEL_KWARGS"],
        "CONNECTION_KWARGS": _connection["CONNECTION_KWARGS"],
    }
else:
    REDIS_URL = _connection["URL"]
