"""`selection.k` is the fixed k of every candidate that does not tune `selector__k` (issue 21,
item 11d): a candidate tuning it overrides it, one that does not gets it, never a default."""

from __future__ import annotations

from pathlib import Path

from sklearn.feature_selection import SelectKBest
from support import REPO, write_yaml

from pipeline.config import load_config
from pipeline.model.pipeline import build_tail
from pipeline.training.plan import unused_selection_k


def _selector_k(conf: Path, params: dict[str, object]) -> object:
    cfg = load_config(conf)
    steps = dict(build_tail(cfg.model, "ridge", params, cfg.training.seed, n_features=40))
    selector = steps["select"]
    assert isinstance(selector, SelectKBest)
    return selector.k


def test_shipped_selection_k_is_the_fixed_k_without_selector_k() -> None:
    assert _selector_k(REPO / "conf", {"alpha": 1.0}) == 15  # conf/base/model.yaml: k: 15


def test_selection_k_yields_to_a_tuned_selector_k(conf_dir: Path) -> None:
    write_yaml(conf_dir / "local" / "model.yaml", {"selection": {"k": 7}})
    assert _selector_k(conf_dir, {"alpha": 1.0}) == 7
    assert _selector_k(conf_dir, {"alpha": 1.0, "selector__k": 12}) == 12
    write_yaml(conf_dir / "local" / "model.yaml", {"selection": {"k": "all"}})
    assert _selector_k(conf_dir, {}) == "all"


def test_validate_notes_a_selection_k_no_candidate_uses(conf_dir: Path) -> None:
    (note,) = unused_selection_k(load_config(REPO / "conf"))  # every shipped one tunes it
    assert note.startswith("note: selection.k (15) is unused") and "selector__k" in note
    assert unused_selection_k(load_config(conf_dir)) == []  # the test ridge does not tune it
