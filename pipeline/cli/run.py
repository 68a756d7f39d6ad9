"""`train`, `worker` and `score`: the commands that fit, tune and apply models."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from pipeline.cli.common import data_given, model_uri_option, num, parquet_path, with_config
from pipeline.cli.interrupts import stop_at_safe_points

if TYPE_CHECKING:  # the command imports its use case lazily, to keep the CLI quick to start
    from pipeline.evaluation.results import PortfolioReport
    from pipeline.serving.replay import ReplayResult
    from pipeline.settings import StockpipeConfig
    from pipeline.training.summary import TrainSummary


def _competition_options(func: Callable[..., None]) -> Callable[..., None]:
    """The options `train` and `tune` share."""
    func = click.option("--quiet", is_flag=True, help="No progress display.")(func)
    func = click.option("--n-jobs", type=int, default=None, help="Parallel trials here.")(func)
    func = click.option(
        "--study-name",
        default=None,
        help="Optuna study (prefix) to create or resume; needs a persistent storage.",
    )(func)
    func = click.option(
        "--summary", type=click.Path(path_type=Path), default=None, help="JSON summary path."
    )(func)
    func = click.option("--trials", type=int, default=None, help="Optuna trials per candidate.")(
        func
    )
    return with_config("data", "tracking", "seed")(func)


@click.command()
@_competition_options
@click.option(
    "--force-promote",
    is_flag=True,
    help="Move the champion alias even if the incumbent is better (recorded).",
)
@click.option(
    "--no-register",
    is_flag=True,
    help="Compete and track everything, register nothing (what `tune` does).",
)
def train(
    cfg: StockpipeConfig,
    study_name: str | None,
    force_promote: bool,
    no_register: bool,
    quiet: bool,
) -> None:
    """Run the model competition, track it, register the winner behind a promotion gate."""
    with stop_at_safe_points():  # a signal stops the job between fits, not inside one
        _compete(cfg, study_name, quiet, force_promote=force_promote, register=not no_register)


@click.command()
@_competition_options
def tune(cfg: StockpipeConfig, study_name: str | None, quiet: bool) -> None:
    """Run the model competition and track every run; register nothing.

    The winner's logged model can be scored with --model-uri (its URI is in the summary).
    """
    with stop_at_safe_points():  # a signal stops the job between fits, not inside one
        _compete(cfg, study_name, quiet, force_promote=False, register=False)


def _compete(
    cfg: StockpipeConfig,
    study_name: str | None,
    quiet: bool,
    *,
    force_promote: bool,
    register: bool,
) -> None:
    from pipeline import bootstrap
    from pipeline.atomic import atomic_write_text, ensure_writable
    from pipeline.training.train import TrainOptions
    from pipeline.training.train import train as run_train

    # Known before any work: a summary that cannot be written fails now, not after the alias
    # has moved.
    path = ensure_writable(cfg.resolve(cfg.training.summary_path), "summary")
    options = TrainOptions(force_promote=force_promote, study_name=study_name, register=register)
    with bootstrap.progress(quiet) as progress:
        result = run_train(cfg, bootstrap.train_ports(cfg, progress), options)
    atomic_write_text(path, json.dumps(result.model_dump(mode="json"), indent=2, allow_nan=False))
    for h, each in result.by_horizon.items():
        click.echo(f"== horizon {h}: {each.champion.registered_model} ({each.seconds}s)")
        click.echo("\n".join([*_competition_lines(each), *_outcome_lines(each)]))
    if not result.by_horizon:
        click.echo("\n".join([*_competition_lines(result), *_outcome_lines(result)]))
    click.echo(f"summary: {path}  tracking: {result.tracking_uri}  time: {result.seconds}s")


def _outcome_lines(result: TrainSummary) -> list[str]:
    """The winner, the gate's reason and the pooled walk-forward numbers."""
    champ, bt = result.champion, result.backtest
    zero = result.baselines.zero_return
    rows = sum(f.test_rows for f in result.folds)
    # Pooled over every test row, like `backtest`: the model and the zero-return forecast are
    # compared on the same rows, and both commands print the same numbers for one model.
    return [
        f"winner: {champ.candidate} -> {champ.registered_model} v{champ.version} "
        f"@{champ.alias} (promoted: {str(champ.promoted).lower()})"
        if champ.version is not None
        else f"winner: {champ.candidate} (not registered; --model-uri {champ.model_uri})",
        f"  {champ.reason}",
        f"pooled over {len(result.folds)} folds ({rows} test rows): rmse {num(bt.rmse, 6)} "
        f"(zero-return {num(zero.rmse, 6)}), directional accuracy "
        f"{num(bt.directional_accuracy)} (zero-return {num(zero.directional_accuracy)})",
        f"strategy sharpe {num(bt.sharpe, 2)} vs buy-and-hold "
        f"{num(bt.baselines.buy_and_hold.sharpe, 2)}, deflated sharpe "
        f"{num(bt.deflated_sharpe)} over {bt.n_trials} trials",
        *portfolio_lines(bt.portfolio),
    ]


def portfolio_lines(block: PortfolioReport | None) -> list[str]:
    """A panel's cross-sectional portfolio (metrics.json's ``portfolio``) in two lines; none
    for a single ticker. `train` and `backtest` print the same lines for one model."""
    if block is None:
        return []
    books = f"top {block.top_k}" + (f" / bottom {block.bottom_k}" if block.bottom_k else "")
    kind = "long/short" if block.bottom_k else "long-only"
    return [
        f"portfolio ({books} of {block.n_tickers} tickers, after {block.cost_bps:g} bps): "
        f"{kind} sharpe {num(block.sharpe, 2)}, annual return {num(block.annual_return)}, "
        f"max drawdown {num(block.max_drawdown)}, turnover {num(block.turnover, 2)}",
        f"  rank ic {num(block.rank_ic)} (t {num(block.rank_ic_tstat, 2)}) over "
        f"{block.rank_ic_dates} dates; of {block.rebalances} rebalances "
        f"{block.tied_rebalances} tied, {block.clamped_rebalances} clamped",
    ]


def _competition_lines(result: TrainSummary) -> list[str]:
    """One line per candidate, then fold-layout notes and skipped tickers."""
    lines = []
    for c in result.candidates:
        best = "n/a" if c.best_value is None else f"{c.best_value:.6g}"
        cut = f"  TIMED OUT after {c.n_trials} of {c.budget}" if c.timed_out else ""
        lines.append(
            f"{c.name:<14} best {best}  trials {c.n_trials:>3} (pruned {c.n_pruned})  "
            f"{c.seconds:.1f}s{cut}"
        )
    if result.folds_layout.adapted:
        lines.append(f"note: {result.folds_layout.adapted}")
    skipped = result.data.skipped_tickers.items()
    lines += [f"skipped: {t} ({s['rows']} rows, needs {s['needed']})" for t, s in skipped]
    return lines


@click.command()
@with_config("data", "tracking", "seed")
@click.option("--study", "study_name", required=True, help="Study name of the competition.")
@click.option("--trials", type=int, default=None, help="Trial budget per candidate.")
@click.option("--n-jobs", type=int, default=None, help="Parallel trials in this worker.")
def worker(cfg: StockpipeConfig, study_name: str) -> None:
    """Join a running competition's study (shared storage) and run trials until its budget."""
    from pipeline import bootstrap
    from pipeline.training.worker import run_worker

    done = run_worker(cfg, bootstrap.data_ports(cfg, in_memory=True), study_name)
    for name, count in done.items():
        click.echo(f"{name}: ran {count} trial(s) in {study_name}.{name}")


DATE = click.DateTime(formats=["%Y-%m-%d"])


@click.command()
@with_config("data", "tracking", "seed")
@model_uri_option
@click.option(
    "--output",
    type=click.Path(path_type=Path),
    default="outputs/predictions.parquet",
    show_default=True,
    callback=parquet_path,
    help="Parquet file for the predictions (the suffix must be .parquet).",
)
@click.option("--start", type=DATE, default=None, help="Replay from this date (with --end).")
@click.option("--end", type=DATE, default=None, help="Replay up to this date (with --start).")
def score(
    cfg: StockpipeConfig,
    model_uri: str | None,
    output: Path,
    start: dt.datetime | None,
    end: dt.datetime | None,
) -> None:
    """Predict with the registered model from the latest history; write parquet.

    With --start and --end, replay instead: predict every trading date in the range as if
    scored on that evening (rows up to that date only), logged with source 'replay'.

    Without --data/--snapshot: the source the model was trained from, as it is now (its
    file re-read, its tickers only, or the newest snapshots of its tickers), not its training
    snapshot, which would score stale dates.
    """
    from pipeline import bootstrap
    from pipeline.atomic import ensure_writable
    from pipeline.serving.replay import check_range, replay
    from pipeline.serving.score import score as run_score
    from pipeline.serving.sinks import ParquetSink

    if (start is None) != (end is None):
        raise click.UsageError(
            "--start and --end go together: both to replay a date range, neither to score "
            "the latest date"
        )
    if start is not None and end is not None:
        check_range(start.date(), end.date())
    path = ensure_writable(output, "output")
    data = bootstrap.model_data(cfg, model_uri, given=data_given(), replay=False)
    click.echo(data.note)
    if start is not None and end is not None:
        ports, sink = bootstrap.score_ports(cfg, data), ParquetSink(path)
        replayed = replay(cfg, ports, sink, start.date(), end.date(), model_uri)
        click.echo("\n".join([str(replayed.frame), *_replay_lines(replayed, output)]))
        return
    result = run_score(cfg, bootstrap.score_ports(cfg, data), ParquetSink(path), model_uri)
    click.echo(str(result.frame))
    for ticker, rows in result.skipped.items():
        click.echo(f"skipped: {ticker} ({rows} rows, needs {result.need_rows})")
    if (stale := result.stale_warning()) is not None:
        click.echo(stale)
    click.echo(f"wrote {result.frame.height} row(s) to {output}")


def _replay_lines(result: ReplayResult, output: Path) -> list[str]:
    """What a replay left out, the dates it covered and where the rows went."""
    frame, need = result.frame, result.need_rows
    lines = [
        f"skipped: {ticker} ({dates} date(s) with fewer than {need} rows of history)"
        for ticker, dates in result.skipped.items()
    ]
    first, last, dates = result.covered
    return [
        *lines,
        f"replayed {dates} trading date(s) from {first} to {last} "
        f"(asked {result.start} to {result.end}) for {frame['ticker'].n_unique()} ticker(s) "
        f"in {result.calls} model call(s)",
        f"wrote {frame.height} row(s) to {output}",
    ]
