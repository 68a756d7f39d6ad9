"""`train`, `worker` and `score`: the commands that fit, tune and apply models."""

from __future__ import annotations

import json
from pathlib import Path

import click

from pipeline.cli.common import config_options, handle_errors, load, num


@click.command()
@config_options
@click.option("--trials", type=int, default=None, help="Optuna trials per candidate.")
@click.option(
    "--summary",
    type=click.Path(path_type=Path),
    default=None,
    help="Where to write the JSON summary.",
)
@click.option(
    "--study-name",
    default=None,
    help="Optuna study (prefix) to create or resume; needs a persistent storage.",
)
@click.option("--n-jobs", type=int, default=None, help="Parallel trials on this machine.")
@click.option(
    "--force-promote",
    is_flag=True,
    help="Move the champion alias even if the incumbent is better (recorded).",
)
@click.option("--quiet", is_flag=True, help="No progress display.")
@handle_errors
def train(
    config_dir: Path,
    env: str | None,
    data: Path | None,
    tracking_uri: str | None,
    seed: int | None,
    snapshot: str | None,
    trials: int | None,
    summary: Path | None,
    study_name: str | None,
    n_jobs: int | None,
    force_promote: bool,
    quiet: bool,
) -> None:
    """Run the model competition, track it, register the winner behind a promotion gate."""
    from pipeline import bootstrap
    from pipeline.atomic import atomic_write_text, ensure_writable
    from pipeline.training.train import TrainOptions
    from pipeline.training.train import train as run_train

    cfg = load(
        config_dir,
        env,
        data=data,
        trials=trials,
        seed=seed,
        snapshot=snapshot,
        tracking_uri=tracking_uri,
        summary=summary,
        n_jobs=n_jobs,
    )
    # Known before any work: a summary that cannot be written fails now, not after the alias
    # has moved.
    path = ensure_writable(cfg.resolve(cfg.training.summary_path), "summary")
    with bootstrap.progress(quiet) as progress:
        result = run_train(
            cfg,
            bootstrap.train_ports(cfg, progress),
            TrainOptions(force_promote=force_promote, study_name=study_name),
        )
    atomic_write_text(path, json.dumps(result, indent=2, default=str))
    champ, m = result["champion"], result["metrics"]
    base, bt = result["baselines"]["zero_return"], result["backtest"]
    lines = [
        f"{c['name']:<14} best {c['best_value']:.6g}  trials {c['n_trials']:>3} "
        f"(pruned {c['n_pruned']})  {c['seconds']:.1f}s"
        + (f"  TIMED OUT after {c['n_trials']} of {c['budget']}" if c["timed_out"] else "")
        for c in result["candidates"]
    ]
    lines += [f"note: {result['folds_layout']['adapted']}"] * bool(
        result["folds_layout"]["adapted"]
    )
    lines += [
        f"skipped: {t} ({s['rows']} rows, needs {s['needed']})"
        for t, s in result["data"]["skipped_tickers"].items()
    ]
    click.echo("\n".join(lines))
    click.echo(
        f"winner: {champ['candidate']} -> {champ['registered_model']} v{champ['version']} "
        f"@{champ['alias']} (promoted: {str(champ['promoted']).lower()})\n"
        f"  {champ['reason']}\n"
        f"mean over {len(result['folds'])} folds: rmse {m['rmse']:.6f} "
        f"(zero-return {base['rmse']:.6f}), directional accuracy "
        f"{m['directional_accuracy']:.3f} (zero-return {base['directional_accuracy']:.3f})\n"
        f"strategy sharpe {num(bt['sharpe'], 2)} vs buy-and-hold "
        f"{num(bt['baselines']['buy_and_hold']['sharpe'], 2)}, deflated sharpe "
        f"{num(bt['deflated_sharpe'])} over {bt['n_trials']} trials\n"
        f"summary: {path}  tracking: {result['tracking_uri']}  time: {result['seconds']}s"
    )


@click.command()
@config_options
@click.option("--study", "study_name", required=True, help="Study name of the competition.")
@click.option("--trials", type=int, default=None, help="Trial budget per candidate.")
@click.option("--n-jobs", type=int, default=None, help="Parallel trials in this worker.")
@handle_errors
def worker(
    config_dir: Path,
    env: str | None,
    data: Path | None,
    tracking_uri: str | None,
    seed: int | None,
    snapshot: str | None,
    study_name: str,
    trials: int | None,
    n_jobs: int | None,
) -> None:
    """Join a running competition's study (shared storage) and run trials until its budget."""
    from pipeline import bootstrap
    from pipeline.training.worker import run_worker

    cfg = load(
        config_dir,
        env,
        data=data,
        trials=trials,
        seed=seed,
        snapshot=snapshot,
        tracking_uri=tracking_uri,
        n_jobs=n_jobs,
    )
    done = run_worker(cfg, bootstrap.data_ports(cfg, in_memory=True), study_name)
    for name, count in done.items():
        click.echo(f"{name}: ran {count} trial(s) in {study_name}.{name}")


@click.command()
@config_options
@click.option(
    "--model-uri", default=None, help="Defaults to models:/<registered_model>@<champion_alias>."
)
@click.option(
    "--output",
    type=click.Path(path_type=Path),
    default="outputs/predictions.parquet",
    show_default=True,
)
@handle_errors
def score(
    config_dir: Path,
    env: str | None,
    data: Path | None,
    tracking_uri: str | None,
    seed: int | None,
    snapshot: str | None,
    model_uri: str | None,
    output: Path,
) -> None:
    """Predict with the registered model from the latest history; write parquet."""
    from pipeline import bootstrap
    from pipeline.atomic import ensure_writable
    from pipeline.serving.score import score as run_score
    from pipeline.serving.sinks import ParquetSink

    cfg = load(config_dir, env, data=data, seed=seed, snapshot=snapshot, tracking_uri=tracking_uri)
    path = ensure_writable(output, "output")
    result = run_score(cfg, bootstrap.score_ports(cfg), ParquetSink(path), model_uri)
    click.echo(str(result.frame))
    for ticker, rows in result.skipped.items():
        click.echo(f"skipped: {ticker} ({rows} rows, needs {result.need_rows})")
    click.echo(f"wrote {result.frame.height} row(s) to {output}")


@click.command()
@click.option(
    "--config", "config_dir", type=click.Path(path_type=Path), default="conf", show_default=True
)
@click.option("--env", default=None)
@click.option("--tracking-uri", default=None)
@click.option(
    "--model-uri", default=None, help="Defaults to models:/<registered_model>@<champion_alias>."
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8000, show_default=True)
@handle_errors
def serve(
    config_dir: Path,
    env: str | None,
    tracking_uri: str | None,
    model_uri: str | None,
    host: str,
    port: int,
) -> None:
    """Serve the registered model over HTTP (POST /predict); needs the `serve` extra."""
    try:
        import uvicorn

        from pipeline.serving.api import create_app
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise click.ClickException(
            "install the serving extra: pip install 'stockpipe[serve]'"
        ) from exc
    from pipeline import bootstrap
    from pipeline.tracking.mlflow_adapter import MlflowModelLoader

    cfg = load(config_dir, env, tracking_uri=tracking_uri)
    uri = model_uri or cfg.tracking.champion_uri
    model = MlflowModelLoader(cfg.tracking_uri).load(uri)
    # The same contract policy as files: one set of rules for every input.
    policy = bootstrap.contract_policy(cfg)
    app = create_app(model, cfg.model.target.horizon, cfg.serving, policy)
    uvicorn.run(app, host=host, port=port)
