"""The one place logging is configured: human-readable by default, JSON lines on request."""

from __future__ import annotations

import json
import logging
import os
import sys
import warnings
from typing import Any

_NOISY = ("mlflow", "alembic", "urllib3", "optuna", "git", "sqlalchemy")
# Optuna logs a trial cut short by Ctrl-C or SIGTERM with the full traceback of wherever the
# interrupt landed (often 50+ lines of sklearn frames); the CLI already says it was stopped.
_OPTUNA_TRIALS = "optuna.study._optimize"


def _drop_interrupt_traceback(record: logging.LogRecord) -> bool:
    """Keep the record but not its traceback when the error is an interrupt."""
    if record.exc_info and isinstance(record.exc_info[1], KeyboardInterrupt):
        record.exc_info, record.exc_text = None, None
    return True


# What every LogRecord carries; any other attribute came from ``extra=`` and is a field
# (except uvicorn's color_message: the message again, with terminal colour codes).
_RECORD_ATTRS = frozenset(
    (
        *logging.LogRecord("", 0, "", 0, "", (), None).__dict__,
        *("message", "asctime", "taskName", "color_message"),
    )
)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, every ``extra=`` field (such as
    the service's request_id, latency_ms, model_version), and exc when present."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRS and key not in doc:
                doc[key] = value
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)  # an odd extra (a date, a path) is still a line


def setup_logging(level: str = "INFO", json_lines: bool = False) -> None:
    """Configure the root logger on stderr, and quiet third-party chatter."""
    # MLflow installs its own stderr handler on import unless told not to; then its records
    # would bypass our format (and --log-json).
    os.environ.setdefault("MLFLOW_CONFIGURE_LOGGING", "false")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter()
        if json_lines
        else logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in _NOISY:
        logging.getLogger(name).setLevel(logging.WARNING)
    trials = logging.getLogger(_OPTUNA_TRIALS)
    if _drop_interrupt_traceback not in trials.filters:
        trials.addFilter(_drop_interrupt_traceback)
    # Library deprecation chatter is not actionable for our users.
    warnings.filterwarnings("ignore", category=FutureWarning, module="mlflow")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message=".*Pandas4Warning.*")
