"""Every published JSON schema (docs/schemas/) is current: regenerated, it is the same text."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel
from support import REPO

from pipeline.schemas import published, schema_text, write_schema


@pytest.mark.parametrize(("relative", "model"), list(published().items()), ids=lambda v: str(v))
def test_published_schema_is_current(relative: Path, model: type[BaseModel]) -> None:
    assert (REPO / relative).read_text(encoding="utf-8") == schema_text(model), (
        f"{relative} is stale: regenerate it with `python -m pipeline.schemas`"
    )


def test_the_generator_writes_every_schema(tmp_path: Path) -> None:
    for relative, model in published().items():
        written = write_schema(model, tmp_path / relative)
        assert written.read_text(encoding="utf-8") == schema_text(model)
