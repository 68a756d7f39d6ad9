"""stockpipe: leak-proof, tracked stock prediction pipelines."""

from __future__ import annotations

__version__ = "0.1.0"
