"""Published JSON schemas of the files stockpipe writes for other tools (docs/schemas/).

Each comes from the pydantic model the file is written from, so the schema cannot describe
another file than the one written; a test per schema fails when the published copy is stale.

    python -m pipeline.schemas        # regenerate every published schema
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pydantic import BaseModel

from pipeline.monitoring.report import MonitorReport
from pipeline.training.summary import SCHEMA_PATH as TRAIN_SUMMARY_SCHEMA
from pipeline.training.summary import TrainSummary

SCHEMA_DIR = TRAIN_SUMMARY_SCHEMA.parent  # docs/schemas: one folder for every schema


def schema_text(model: type[BaseModel]) -> str:
    """``model``'s JSON schema (serialisation mode) as published: sorted keys, the root inline."""
    schema = model.model_json_schema(mode="serialization")
    if "$ref" in schema:  # a model nesting itself: pydantic moves the root into $defs
        root = schema["$defs"].pop(model.__name__)
        schema = {**root, "$defs": schema["$defs"]}
    text = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    return text.replace(f'"#/$defs/{model.__name__}"', '"#"')


def write_schema(model: type[BaseModel], path: Path) -> Path:
    """Write ``model``'s schema to ``path`` (folders created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(schema_text(model), encoding="utf-8")
    return path


def published() -> dict[Path, type[BaseModel]]:
    """Every published schema's path (relative to the repository root) and its model."""
    return {
        TRAIN_SUMMARY_SCHEMA: TrainSummary,
        SCHEMA_DIR / "monitor.schema.json": MonitorReport,
    }


if __name__ == "__main__":  # python -m pipeline.schemas [FOLDER]
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path()
    for relative, model in published().items():
        print(write_schema(model, root / relative))
