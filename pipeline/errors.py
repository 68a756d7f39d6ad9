"""Typed errors: everything a user can cause ends up as one of these, with a clear message."""

from __future__ import annotations


class StockpipeError(Exception):
    """Base class; the CLI prints the message and exits non-zero without a traceback."""

    exit_code = 2


class ConfigError(StockpipeError):
    """A configuration file is missing, unreadable or invalid."""


class DataError(StockpipeError):
    """Input data is missing, malformed or violates the data contract."""


class TrackingError(StockpipeError):
    """The tracking server or model registry cannot be used."""


class ModelError(StockpipeError):
    """A model cannot be built, trained, loaded or applied."""


class FeatureInputError(ModelError, ValueError):
    """Rows given to a model's feature step are unusable: not a frame, missing columns, empty.

    Also a ``ValueError``, which is what scikit-learn's estimator contract (and code written
    against it, such as ``try: ... except ValueError``) expects for bad input.
    """
