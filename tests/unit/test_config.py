"""Config loading: merging, typed models, and errors that name the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from support import REPO, overlay, write_yaml

from pipeline.bootstrap import apply_overrides
from pipeline.config import load_config
from pipeline.errors import ConfigError
from pipeline.features.spec import build_feature_defs
from pipeline.settings import AUTO
from pipeline.training.folds import fold_spec


def test_shipped_config_loads_with_defaults() -> None:
    cfg = load_config(REPO / "conf")
    assert cfg.model.target.horizon == 1
    assert cfg.model.selection.features == AUTO
    assert cfg.tracking.registered_model == "StocksPredictionModel"
    assert cfg.training.folds.n_folds >= 5
    assert cfg.training.folds.purge >= cfg.model.target.horizon
    assert cfg.resolve(cfg.data.path) == REPO / "data" / "sample" / "NVDA.csv"
    assert cfg.tracking_uri == f"sqlite:///{REPO / 'mlruns' / 'mlflow.db'}"


def test_models_are_frozen(conf_dir: Path) -> None:
    cfg = load_config(conf_dir)
    with pytest.raises(Exception, match="frozen"):
        cfg.training.seed = 3  # type: ignore[misc]


def test_local_overrides_base(conf_dir: Path, tmp_path: Path) -> None:
    cfg = load_config(conf_dir)
    assert cfg.training.n_trials == 2
    assert cfg.data.warehouse == tmp_path / "warehouse.duckdb"
    assert cfg.training.folds.test_size == 250  # untouched keys survive the deep merge


def test_unknown_key_names_file_and_key(conf_dir: Path) -> None:
    write_yaml(conf_dir / "local" / "model.yaml", {"selection": {"kk": 3}})
    with pytest.raises(ConfigError) as err:
        load_config(conf_dir)
    msg = str(err.value)
    assert str(conf_dir / "local" / "model.yaml") in msg
    assert "selection.kk" in msg


def test_wrong_type_names_file_and_key(conf_dir: Path) -> None:
    write_yaml(conf_dir / "local" / "training.yaml", {"folds": {"n_folds": "many"}})
    with pytest.raises(ConfigError, match=r"training\.yaml: key 'folds\.n_folds'"):
        load_config(conf_dir)


def test_error_in_base_blames_base(conf_dir: Path) -> None:
    base = conf_dir / "base" / "tracking.yaml"
    base.write_text(base.read_text() + "\nbogus: 1\n")
    with pytest.raises(ConfigError, match=r"base/tracking\.yaml: key 'bogus'"):
        load_config(conf_dir)


def test_unknown_feature_family_is_rejected(conf_dir: Path) -> None:
    write_yaml(conf_dir / "local" / "model.yaml", {"features": {"moon_phase": {"windows": [3]}}})
    with pytest.raises(ConfigError, match=r"features\.moon_phase"):
        load_config(conf_dir)


def test_missing_file_and_directory(tmp_path: Path, conf_dir: Path) -> None:
    with pytest.raises(ConfigError, match="config directory not found"):
        load_config(tmp_path / "nowhere")
    (conf_dir / "base" / "model.yaml").unlink()
    with pytest.raises(ConfigError, match=r"model\.yaml: required config file is missing"):
        load_config(conf_dir)


def test_stray_file_and_bad_yaml(conf_dir: Path) -> None:
    (conf_dir / "local" / "modle.yaml").write_text("a: 1\n")
    with pytest.raises(ConfigError, match="unknown config file"):
        load_config(conf_dir)
    (conf_dir / "local" / "modle.yaml").unlink()
    (conf_dir / "local" / "model.yaml").write_text("target: [unclosed\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(conf_dir)


def test_purge_is_raised_to_each_horizon(conf_dir: Path) -> None:
    write_yaml(conf_dir / "local" / "model.yaml", {"target": {"horizons": [1, 5, 20]}})
    cfg = load_config(conf_dir)
    assert cfg.training.folds.purge == 1
    assert [cfg.for_horizon(h).training.folds.purge for h in (1, 5, 20)] == [1, 5, 20]
    # ... and the SQL fold spec never purges less than the horizon, narrowed or not
    assert fold_spec(cfg.training.folds, 5).purge == 5
    assert fold_spec(cfg.training.folds, 1, purge=3).purge == 3


def test_horizons_name_their_registered_models(conf_dir: Path) -> None:
    write_yaml(conf_dir / "local" / "model.yaml", {"target": {"horizons": [1, 5, 20]}})
    cfg = load_config(conf_dir)
    names = [cfg.for_horizon(h).tracking.registered_model for h in cfg.horizons]
    assert names == [
        "StocksPredictionModel",
        "StocksPredictionModel_h5",
        "StocksPredictionModel_h20",
    ]
    narrowed = cfg.for_horizon(5)
    assert narrowed.horizons == (5,) and narrowed.model.target.horizon == 5
    assert narrowed.tracking.champion_uri == "models:/StocksPredictionModel_h5@champion"
    assert narrowed.for_horizon(5) == narrowed  # narrowing twice changes nothing
    with pytest.raises(ValueError, match="horizon 2 is not configured"):
        cfg.for_horizon(2)


def test_single_horizon_is_a_one_element_list(conf_dir: Path) -> None:
    write_yaml(conf_dir / "local" / "model.yaml", {"target": {"horizon": 5}})
    cfg = load_config(conf_dir)
    assert cfg.horizons == (5,)
    assert cfg.for_horizon(5).tracking.registered_model == "StocksPredictionModel"


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ({"horizon": 1, "horizons": [1]}, "not both"),
        ({"horizons": [1, 1]}, "distinct"),
        ({"horizons": []}, "at least 1"),
        ({"horizons": [0]}, "greater than or equal to 1"),
        ({"horizons": [1, 300]}, "less than or equal to 250"),
    ],
)
def test_bad_horizons_are_refused(conf_dir: Path, target: dict[str, object], message: str) -> None:
    write_yaml(conf_dir / "local" / "model.yaml", {"target": target})
    with pytest.raises(ConfigError, match=message):
        load_config(conf_dir)


def test_env_overlay_and_missing_env(conf_dir: Path) -> None:
    write_yaml(conf_dir / "server" / "tracking.yaml", {"uri": "http://127.0.0.1:8888"})
    cfg = load_config(conf_dir, env="server")
    # local is applied last and still wins over the env overlay
    assert cfg.tracking.uri.startswith("sqlite:///")
    (conf_dir / "local" / "tracking.yaml").unlink()
    assert load_config(conf_dir, env="server").tracking_uri == "http://127.0.0.1:8888"
    with pytest.raises(ConfigError, match="environment 'nope'"):
        load_config(conf_dir, env="nope")


def test_candidate_space_validation(conf_dir: Path) -> None:
    doc = {
        "candidates": [
            {
                "name": "x",
                "estimator": "ridge",
                "space": {"alpha": {"type": "float", "low": 2.0, "high": 1.0}},
            }
        ]
    }
    write_yaml(conf_dir / "local" / "model_candidates.yaml", doc)
    with pytest.raises(ConfigError, match="low > high"):
        load_config(conf_dir)
    doc["candidates"][0]["estimator"] = "prophet"
    write_yaml(conf_dir / "local" / "model_candidates.yaml", doc)
    with pytest.raises(ConfigError, match=r"candidates\.0\.estimator"):
        load_config(conf_dir)


def test_cli_overrides(conf_dir: Path, tmp_path: Path) -> None:
    cfg = apply_overrides(
        load_config(conf_dir),
        data=Path("x.csv"),
        trials=7,
        seed=3,
        tracking_uri="sqlite:///rel.db",
        summary=Path("s.json"),
    )
    assert cfg.data.path == Path("x.csv").resolve()
    assert (cfg.training.n_trials, cfg.training.seed) == (7, 3)
    assert cfg.tracking_uri == f"sqlite:///{Path('rel.db').resolve()}"
    assert cfg.training.summary_path == Path("s.json").resolve()


# --------------------------------------------------------------------------- issue 21, item 10a


@pytest.mark.parametrize(
    ("doc", "key"),
    [
        ({"selection": {"k": "fiften"}}, "selection.k"),  # a union: one error per branch
        ({"selection": {"features": "__AUTOO__"}}, "selection.features"),
        ({"target": {"horizon": 0}}, "target.horizon"),  # validated as horizons.0
        ({"features": {"rsi": {"windows": [0]}}}, "features.rsi.windows.0"),  # + "too short"
    ],
)
def test_overlay_typo_is_blamed_on_the_overlay_once(
    conf_dir: Path, doc: dict[str, object], key: str
) -> None:
    local = write_yaml(conf_dir / "local" / "model.yaml", doc)
    with pytest.raises(ConfigError) as err:
        load_config(conf_dir)
    lines = str(err.value).splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"{local}: key '{key}': "), lines


def test_base_error_is_blamed_on_base_though_an_overlay_edits_the_section(
    conf_dir: Path,
) -> None:
    base = conf_dir / "base" / "model.yaml"
    base.write_text(base.read_text().replace("  k: 15 ", "  k: fifteen "))
    write_yaml(conf_dir / "local" / "model.yaml", {"selection": {"exclude": ["hl_range"]}})
    with pytest.raises(ConfigError) as err:
        load_config(conf_dir)
    assert str(err.value).splitlines() == [
        f"{base}: key 'selection.k': Input should be a valid integer; or Input should be "
        "'all' (got 'fifteen')"
    ]


# --------------------------------------------------------------------------- issue 21, item 11b


@pytest.mark.parametrize(
    ("section", "doc", "key"),
    [
        ("model", {"target": {"horizon": True}}, "target.horizon"),
        ("model", {"target": {"horizon": "5"}}, "target.horizon"),
        ("model", {"target": {"horizons": [1, "5"]}}, "target.horizons.1"),
        ("model", {"selection": {"k": True}}, "selection.k"),
        ("model", {"features": {"rsi": {"windows": [True]}}}, "features.rsi.windows.0"),
        ("training", {"folds": {"n_folds": "5"}}, "folds.n_folds"),
        ("training", {"n_trials": True}, "n_trials"),
    ],
)
def test_integer_counts_refuse_bools_and_strings(
    conf_dir: Path, section: str, doc: dict[str, object], key: str
) -> None:
    path = write_yaml(conf_dir / "local" / f"{section}.yaml", doc)
    with pytest.raises(ConfigError, match=rf"^{path}: key '{key}': Input should be a valid int"):
        load_config(conf_dir)


def test_integer_flags_still_parse(conf_dir: Path) -> None:
    # click hands --trials, --seed and --n-jobs over as ints: strict fields take them.
    cfg = apply_overrides(load_config(conf_dir), trials=3, seed=7, n_jobs=2)
    assert (cfg.training.n_trials, cfg.training.seed, cfg.training.tuning.n_jobs) == (3, 7, 2)


# --------------------------------------------------------------------------- issue 21, item 11c


def _base_features(conf_dir: Path, features: object) -> Path:
    base = conf_dir / "base" / "model.yaml"
    doc = yaml.safe_load(base.read_text())
    if features is None:
        del doc["features"]
    else:
        doc["features"] = features
    return write_yaml(base, doc)


def test_empty_features_in_base_is_an_error_not_hidden_defaults(conf_dir: Path) -> None:
    base = _base_features(conf_dir, {})
    with pytest.raises(ConfigError, match=rf"^{base}: key 'features': .*no features"):
        load_config(conf_dir)
    _base_features(conf_dir, {"dtype": "float32", "rsi": None})  # nothing switched on
    with pytest.raises(ConfigError, match="no features"):
        load_config(conf_dir)
    _base_features(conf_dir, None)
    with pytest.raises(ConfigError, match=rf"^{base}: key 'features': required"):
        load_config(conf_dir)


def test_declared_features_are_exactly_the_families_named(conf_dir: Path) -> None:
    _base_features(conf_dir, {"rsi": {"windows": [14]}})
    write_yaml(conf_dir / "local" / "model.yaml", {"intervals": {"scale_feature": None}})
    cfg = load_config(conf_dir)
    assert [d.name for d in build_feature_defs(cfg.model.features)] == ["rsi_14"]
    # ... and stays so through the CLI flags, which re-validate the whole config
    again = apply_overrides(cfg, seed=5)
    assert [d.name for d in build_feature_defs(again.model.features)] == ["rsi_14"]


REMOVED = [
    ("data", {"fetch": {"interval": "1d"}}, "fetch.interval", "daily bars"),
    ("data", {"fetch": {"backoff_seconds": 0.5}}, "fetch.backoff_seconds", "fetch.retries"),
    ("model", {"intervals": {"method": "conformal"}}, "intervals.method", "always conformal"),
    ("model", {"n_trials": 3}, "n_trials", "--trials N"),
    ("tracking", {"stage_aliases": {"Production": "x"}}, "stage_aliases", "champion_alias"),
]


@pytest.mark.parametrize(("section", "doc", "key", "replacement"), REMOVED)
def test_a_removed_key_names_its_replacement(
    conf_dir: Path, section: str, doc: dict[str, object], key: str, replacement: str
) -> None:
    local = write_yaml(conf_dir / "local" / f"{section}.yaml", doc)
    with pytest.raises(ConfigError) as err:
        load_config(conf_dir)
    message = str(err.value)
    assert message.startswith(f"{local}: key '{key}' was removed: ")
    assert replacement in message and "CHANGELOG.md" in message
    assert "extra" not in message.lower()  # not pydantic's "extra inputs are not permitted"


def test_every_removed_key_is_in_the_changelog() -> None:
    from pipeline.config import REMOVED_KEYS

    changelog = (REPO / "CHANGELOG.md").read_text(encoding="utf-8")
    removed = [f"{section}.{key}" for section, keys in REMOVED_KEYS.items() for key in keys]
    assert {f"{s}.{k}" for s, _, k, _ in REMOVED} == set(removed)  # each one tested above
    assert [key for key in removed if f"`{key}`" not in changelog] == []


def test_stage_names_follow_the_configured_aliases(conf_dir: Path) -> None:
    assert load_config(conf_dir).stage_aliases == {
        "Production": "champion",
        "Staging": "challenger",
    }
    overlay(conf_dir, "tracking", champion_alias="prod")
    overlay(conf_dir, "training", promotion={"challenger_alias": "next"})
    assert load_config(conf_dir).stage_aliases == {"Production": "prod", "Staging": "next"}


def test_one_model_budget_and_its_override(conf_dir: Path) -> None:
    # model.yaml's estimator: 10 trials with a space, 1 without; training.n_trials wins.
    space = {"alpha": {"type": "float", "low": 0.1, "high": 10.0}}
    write_yaml(conf_dir / "local" / "model.yaml", {"estimator": "ridge", "space": space})
    overlay(conf_dir, "training", n_trials=None)
    (one,) = load_config(conf_dir).candidates.candidates
    assert one.n_trials == 10
    overlay(conf_dir, "training", n_trials=3)
    assert load_config(conf_dir).training.n_trials == 3
    assert apply_overrides(load_config(conf_dir), trials=4).training.n_trials == 4
