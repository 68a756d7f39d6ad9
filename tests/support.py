"""Helpers shared by test modules (conftest.py holds only fixtures)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample"


# A small, fast competition for tests: two candidates, tiny models.
FAST_CANDIDATES = {
    "candidates": [
        {
            "name": "lightgbm",
            "estimator": "lightgbm",
            "n_trials": 2,
            "params": {"n_estimators": 40, "num_leaves": 7},
            "space": {
                "learning_rate": {"type": "float", "low": 0.01, "high": 0.1, "log": True},
                "selector__k": {"type": "int", "low": 5, "high": 20},
            },
        },
        {
            "name": "ridge",
            "estimator": "ridge",
            "n_trials": 2,
            "space": {"alpha": {"type": "float", "low": 0.1, "high": 100.0, "log": True}},
        },
    ]
}


def write_yaml(path: Path, doc: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path
