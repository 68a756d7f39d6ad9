"""Typed errors: everything a user can cause ends up as one of these, with a clear message."""

from __future__ import annotations

# Exit codes of the CLI, each with one meaning, so that cron and CI can act on them.
EXIT_INPUT = 2  # bad input, configuration or usage: fix it and run again
EXIT_ALERT = 3  # `monitor` found drift or decay that crosses an alert threshold
EXIT_TRACKING = 4  # the tracking store is unreachable, or failed mid-run


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
