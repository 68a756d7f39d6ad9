"""`stockpipe predictions` (issue 25 item 3), the parts that need no warehouse: the query's
checks, how --model-uri names a version, the log's JSON of interval bounds, the file sinks,
the summary line and the refusals the command makes before reading anything."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from pipeline.atomic import OutputError
from pipeline.cli import main
from pipeline.data.predlog import INTERVALS, decode_bounds, encode_bounds
from pipeline.errors import ConfigError, TrackingError
from pipeline.serving.export import ExportQuery, ExportResult, model_key
from pipeline.serving.sinks import CsvSink, ParquetSink, file_sink
from pipeline.tracking.loader import STAGE_ALIASES


class Versions:
    """A VersionResolver that records what it was asked."""

    def __init__(self, version: str = "7") -> None:
        self.version, self.asked = version, list[str]()

    def follows(self, model_uri: str) -> str | None:
        return None

    def resolve(self, model_uri: str) -> str:
        self.asked.append(model_uri)
        return self.version


@pytest.mark.parametrize(
    ("uri", "key", "asked"),
    [
        ("models:/M/3", ("M", "3"), []),  # a version is taken as given: no registry call
        ("models:/M@champion", ("M", "7"), ["models:/M@champion"]),
        ("models:/M/Production", ("M", "7"), ["models:/M/Production"]),
        ("models:/M/Latest", ("M", "7"), ["models:/M/Latest"]),
    ],
)
def test_a_model_uri_names_one_version(uri: str, key: tuple[str, str], asked: list[str]) -> None:
    versions = Versions()
    assert model_key(uri, versions, STAGE_ALIASES) == key
    assert versions.asked == asked


@pytest.mark.parametrize("uri", ["models:/m-abc123", "runs:/abc/model"])
def test_a_uri_naming_no_registered_version_is_refused(uri: str) -> None:
    with pytest.raises(ConfigError, match="names no registered version"):
        model_key(uri, Versions(), STAGE_ALIASES)


def test_a_malformed_model_uri_is_the_parsers_error() -> None:
    with pytest.raises(TrackingError, match="not a version number"):
        model_key("models:/M/Archived", Versions(), STAGE_ALIASES)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (ExportQuery(dt.date(2024, 2, 1), dt.date(2024, 1, 1)), "is after --end"),
        (ExportQuery(sources=("score", "scores")), "--source score,scores: give one or more"),
        (ExportQuery(sources=()), "give one or more of score, cycle, replay, api"),
    ],
)
def test_a_bad_query_is_refused(query: ExportQuery, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        query.check()


def test_a_good_query_passes() -> None:
    day = dt.date(2024, 1, 1)
    ExportQuery(day, day, "models:/M/1", ("api", "score")).check()  # one day is a range


def test_bounds_go_into_json_and_come_back_in_level_order() -> None:
    """Any whole-percent levels, listed in any order, come back as Float64 columns ordered by
    level (5 before 10: numerically, not as text); a level a row lacks is null there, a
    non-finite bound is stored as null, and a row without intervals has null JSON."""
    frame = pl.DataFrame(
        {
            "lower_10": [0.1, -0.25],
            "upper_10": [0.3, math.inf],
            "lower_5": [0.05, None],
            "upper_5": [0.35, None],
        }
    )
    encoded = frame.select(encode_bounds(["lower_10", "upper_10", "lower_5", "upper_5"]))
    assert json.loads(encoded[INTERVALS][1]) == {
        "lower_10": -0.25,
        "upper_10": None,
        "lower_5": None,
        "upper_5": None,
    }
    none = frame.select(encode_bounds([]))[INTERVALS]
    other = pl.DataFrame({INTERVALS: ['{"lower_90": 1.5, "upper_90": 2.5}']})
    stored = pl.concat([encoded, pl.DataFrame({INTERVALS: none}), other])
    got = decode_bounds(stored.with_row_index("row"))
    assert got.columns == [
        "row",
        "lower_5",
        "upper_5",
        "lower_10",
        "upper_10",
        "lower_90",
        "upper_90",
    ]
    assert got.schema["lower_5"] == pl.Float64
    assert got.row(0)[1:5] == (0.05, 0.35, 0.1, 0.3)
    assert got.row(1)[1:5] == (None, None, -0.25, None)
    assert got.row(2)[1:] == (None,) * 6
    assert got.row(3)[5:] == (1.5, 2.5)


def test_no_bounds_at_all_gives_no_bound_columns() -> None:
    stored = pl.DataFrame(
        {"k": [1, 2], INTERVALS: [None, None]}, schema_overrides={INTERVALS: pl.String}
    )
    assert decode_bounds(stored).columns == ["k"]


def test_the_suffix_chooses_the_sink(tmp_path: Path) -> None:
    assert isinstance(file_sink(tmp_path / "a.parquet"), ParquetSink)
    assert isinstance(file_sink(tmp_path / "a.CSV"), CsvSink)
    with pytest.raises(OutputError, match=r"ends in neither \.parquet nor \.csv"):
        file_sink(tmp_path / "a.xlsx")


def test_the_csv_sink_writes_atomically_a_file_polars_reads_back(tmp_path: Path) -> None:
    frame = pl.DataFrame({"d": [dt.date(2024, 1, 2)], "x": [0.1 + 0.2], "n": [None]})
    path = CsvSink(tmp_path / "out" / "f.csv").write(
        frame.with_columns(pl.col("n").cast(pl.Float64))
    )
    back = pl.read_csv(path, try_parse_dates=True, schema_overrides={"n": pl.Float64})
    assert back.equals(frame.with_columns(pl.col("n").cast(pl.Float64)))
    assert [p.name for p in path.parent.iterdir()] == ["f.csv"]  # no temporary file left


def _result(realised: list[float | None], path: Path, note: str | None = None) -> ExportResult:
    days = [dt.date(2024, 1, 2) + dt.timedelta(days=i) for i in range(len(realised))]
    frame = pl.DataFrame(
        {"as_of_date": days, "realised": realised}, schema_overrides={"realised": pl.Float64}
    )
    return ExportResult(frame, path, note)


def test_the_summary_says_rows_span_realised_and_path(tmp_path: Path) -> None:
    out = tmp_path / "p.csv"
    line = _result([0.1, None, 0.2, None], out).summary()
    span = "as of 2024-01-02 to 2024-01-05 (2 with a realised return)"
    assert line == f"wrote 4 prediction(s) {span} to {out}"
    assert (
        _result([], out).summary() == f"wrote 0 predictions to {out}: no logged prediction matches"
    )
    assert _result([None], out, "no warehouse yet").summary().endswith("; no warehouse yet")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--output", "x.xlsx"], "ends in neither .parquet nor .csv"),
        (["--output", "x.csv", "--start", "2024-02-01", "--end", "2024-01-01"], "is after --end"),
        (["--output", "x.csv", "--source", "nowhere"], "--source nowhere"),
        (["--output", "x.csv", "--start", "01/02/2024"], "Invalid value for '--start'"),
    ],
)
def test_the_command_refuses_bad_arguments_with_exit_2(
    conf_dir: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    """Refused before the output folder or the log is looked at: nothing is created."""
    result = CliRunner().invoke(main, ["predictions", "--config", str(conf_dir), *args])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())
    assert (
        not (tmp_path / "warehouse.log.sqlite").exists()
        and not (tmp_path / "warehouse.duckdb").exists()
    )


def test_an_output_under_a_file_is_refused_before_the_log_is_read(
    conf_dir: Path, tmp_path: Path
) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    result = CliRunner().invoke(
        main, ["predictions", "--config", str(conf_dir), "--output", str(blocker / "p.csv")]
    )
    assert result.exit_code == 2 and "is a file, not a folder" in result.output
    assert not (tmp_path / "warehouse.log.sqlite").exists()
