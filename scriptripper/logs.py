"""JSON log lines for production (LOG_FORMAT=json, the default when ENVIRONMENT=production).

One JSON object per record: time, level, logger, message, and the structured
fields the code passes with `extra=` (`job_id`, `task`, `queue`, `status`, ...),
so a log collector can follow one job across the API and every worker.

The code never logs transcript text, prompts or secrets at info; as a second
line of defence, extra fields with such names are replaced here rather than
written out.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

# LogRecord's own attributes: everything else on a record came from `extra=`.
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}

# Extra fields that would carry user content or credentials.
REDACTED_FIELDS = frozenset({
    "transcript", "prompt", "prompts", "system_prompt", "output", "text", "body", "content",
    "secret", "token", "api_key", "key", "password", "authorization", "webhook_secret",
})


def _jsonable(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return str(value)


# gunicorn's access record carries the request as "atoms" in record.args (gunicorn.glogging).
ACCESS_FIELDS = {"m": "method", "U": "path", "s": "status", "M": "duration_ms", "B": "bytes",
                 "h": "remote_addr", "a": "user_agent"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in vars(record).items():
            if name in _RECORD_ATTRS or name.startswith("_"):
                continue
            entry[name] = "[redacted]" if name.lower() in REDACTED_FIELDS else _jsonable(value)
        if record.name == "gunicorn.access" and isinstance(record.args, dict):
            entry.update({name: _jsonable(record.args.get(atom)) for atom, name in ACCESS_FIELDS.items()})
            if str(entry["status"]).isdigit():
                entry["status"] = int(entry["status"])
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        entry.setdefault("process", record.process)
        return json.dumps(entry, ensure_ascii=False, default=str)
