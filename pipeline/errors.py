"""Typed errors: everything a user can cause ends up as one of these, with a clear message."""

from __future__ import annotations

# Exit codes of the CLI, each with one meaning, so that cron and CI can act on them.
EXIT_INPUT = 2  # bad input, configuration or usage: fix it and run again
EXIT_ALERT = 3  # `monitor` found drift or decay that crosses an alert threshold
EXIT_TRACKING = 4  # the tracking store is unreachable, or failed mid-run
EXIT_BUSY = 5  # another `cycle` of this project is running: this one did nothing


class StockpipeError(Exception):
    """Base class; the CLI prints the message and exits non-zero without a traceback."""

    exit_code = EXIT_INPUT


class ConfigError(StockpipeError):
    """A configuration file is missing, unreadable or invalid."""


class DataError(StockpipeError):
    """Input data is missing, malformed or violates the data contract."""


class TrackingError(StockpipeError):
    """The tracking server or model registry cannot be used for what was asked (an unknown
    model, alias or version: the request is at fault, exit 2)."""


class TrackingUnavailableError(TrackingError):
    """The tracking store itself cannot be reached, created or opened (exit 4)."""

    exit_code = EXIT_TRACKING


class ModelError(StockpipeError):
    """A model cannot be built, trained, loaded or applied."""


class FeatureInputError(ModelError, ValueError):
    """Rows given to a model's feature step are unusable: not a frame, missing columns, empty.

    Also a ``ValueError``, which is what scikit-learn's estimator contract (and code written
    against it, such as ``try: ... except ValueError``) expects for bad input.
    """


# Modules whose own exceptions mean the tracking store failed under us (MLflow and the HTTP
# stack it talks through), not that the request was wrong.
TRACKING_MODULES = ("mlflow", "requests", "urllib3")


def exit_code_of(exc: BaseException) -> int | None:
    """The CLI exit code of ``exc``: the one place that decides it, for every command.

    Our errors carry their code (an unreachable tracking store is EXIT_TRACKING wherever it
    is found: `validate`'s probe or `train`'s first call); a tracking library's own error
    escaping mid-run is EXIT_TRACKING too. None: not a failure we classify (a bug: re-raise).
    """
    if isinstance(exc, StockpipeError):
        return exc.exit_code
    if type(exc).__module__.startswith(TRACKING_MODULES):
        return EXIT_TRACKING
    return None
