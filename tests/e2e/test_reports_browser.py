"""report.html in a real browser (issue 27): headless Chromium (Debian's ``chromium``) opens
the pages that `train`, `backtest` and `monitor` wrote on a real project, and a panel's.

One project: `stockpipe train` (two cheap candidates, 2 trials each, a real MLflow sqlite
store) on the NVDA and SPY sample files cut before CUT; `backtest`; a replay of the days
after CUT into the prediction log (a track record) and a service's request log; then
`monitor` on NVDA with its volume 1000 times larger from DRIFT on (an alert, exit 3). Each page
must load with no console error and no request beyond its own file, every chart must be
drawn (an <svg> with a size), and every number on it must be the JSON file's. A screenshot
of each is taken at 1280x800 (into $STOCKPIPE_SCREENSHOTS when set: the README's are made
with ``STOCKPIPE_SCREENSHOTS=docs``).

Chromium is driven over the DevTools protocol with ``websockets`` (installed with yfinance).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import shutil
import struct
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner
from report_checks import PANEL_CHARTS, check_numbers, draw_panel
from support import SAMPLE, invoke_ok, make_project, overlay, sqlite_uri, wait_until
from websockets.sync.client import ClientConnection, connect

from pipeline import bootstrap
from pipeline.cli import main
from pipeline.config import load_config
from pipeline.serving.requeststore import RequestRecord

pytestmark = pytest.mark.slow

CUT = dt.date(2025, 7, 1)  # training data ends before this day; the days after are "live"
DRIFT = dt.date(2026, 8, 3)  # NVDA's volume is reported in shares, not thousands, from here
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
REQUEST = "Network.requestWillBeSent"
VIEWPORT = {"width": 1280, "height": 800, "deviceScaleFactor": 1, "mobile": False}
PROBE = """JSON.stringify({
  numbers: [...document.querySelectorAll('[data-json]')].map(
    e => [e.dataset.json, e.dataset.value, e.dataset.fmt, e.textContent]),
  charts: [...document.querySelectorAll('figure.chart')].map(f => {
    const svg = f.querySelector('svg'), box = svg ? svg.getBoundingClientRect() : null;
    return [f.dataset.chart, f.classList.contains('failed'),
            svg ? svg.querySelectorAll('path, use, image').length : 0,
            box ? box.width : 0, box ? box.height : 0];
  }),
  failed: document.querySelectorAll('.failed').length,
  scripts: document.scripts.length,
  verdict: document.querySelector('header.verdict h1').textContent,
})"""


@dataclass(frozen=True)
class Visit:
    """What a page showed the browser: its numbers and charts, its console, its requests."""

    found: dict[str, Any]
    events: list[dict[str, Any]]
    png: bytes

    def errors(self) -> list[Any]:
        out: list[Any] = []
        for e in self.events:
            method, params = e["method"], e.get("params", {})
            if method == "Runtime.exceptionThrown":
                out.append(params["exceptionDetails"])
            elif method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
                out.append(params["args"])
            elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                out.append(params["entry"])
        return out

    def requests(self) -> list[str]:
        """Every URL the page asked for, but data: URIs (inline images drawn in its SVG)."""
        urls = (e["params"]["request"]["url"] for e in self.events if e["method"] == REQUEST)
        return [url for url in urls if not url.startswith("data:")]


class Browser:
    """Headless Chromium over the DevTools protocol: one tab per page visited."""

    def __init__(self, binary: str, profile: Path) -> None:
        self.log = (profile / "chromium.log").open("w")
        self.proc = subprocess.Popen(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             "--no-first-run", "--remote-debugging-port=0", f"--user-data-dir={profile}",
             "--window-size=1280,800", "about:blank"],
            stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        port_file = profile / "DevToolsActivePort"  # Chromium writes its port and path here
        wait_until(lambda: port_file.is_file() and port_file.read_text().count("\n"), 60, "port")
        port, path = port_file.read_text().split()[:2]
        self.ws: ClientConnection = connect(f"ws://127.0.0.1:{port}{path}", max_size=None)
        self.pending: list[dict[str, Any]] = []
        self.next_id = 0

    def call(self, method: str, params: dict[str, Any] | None = None, session: str = "") -> Any:
        self.next_id += 1
        message: dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        self.ws.send(json.dumps(message))
        while True:
            reply = json.loads(self.ws.recv(timeout=60))
            if reply.get("id") != self.next_id:
                self.pending.append(reply)  # an event (or a late reply), kept for the visit
                continue
            assert "error" not in reply, f"{method}: {reply['error']}"
            return reply["result"]

    def wait_event(self, method: str, session: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == method for e in self.pending):
            left = max(0.1, deadline - time.monotonic())
            self.pending.append(json.loads(self.ws.recv(timeout=left)))
        assert session in {e.get("sessionId") for e in self.pending if e.get("method") == method}

    def visit(self, page: Path) -> Visit:
        """Open ``page`` at 1280x800, wait for its load event, read it and take a screenshot."""
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        attached = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})
        session = attached["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable", session=session)
        self.call("Emulation.setDeviceMetricsOverride", VIEWPORT, session)
        self.pending.clear()
        self.call("Page.navigate", {"url": page.as_uri()}, session)
        self.wait_event("Page.loadEventFired", session)
        probe = {"expression": PROBE, "returnByValue": True}
        found = json.loads(self.call("Runtime.evaluate", probe, session)["result"]["value"])
        shot = self.call("Page.captureScreenshot", {"format": "png"}, session)
        events = [e for e in self.pending if e.get("sessionId") == session and "method" in e]
        self.call("Target.closeTarget", {"targetId": target})
        return Visit(found, events, base64.b64decode(shot["data"]))

    def close(self) -> None:
        self.ws.close()
        self.proc.terminate()
        self.proc.wait(30)
        self.log.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    binary = next((path for name in BROWSERS if (path := shutil.which(name))), None)
    if binary is None:
        pytest.skip(
            "no Chromium on PATH (looked for chromium, chromium-browser, google-chrome): "
            "`apt-get install -y chromium` (Debian; .ci/run installs it) to run the browser checks"
        )
    chromium = Browser(binary, tmp_path_factory.mktemp("chromium"))
    yield chromium
    chromium.close()


def _read(ticker: str) -> pl.DataFrame:
    return pl.read_csv(SAMPLE / f"{ticker}.csv", try_parse_dates=True)


def _write(frame: pl.DataFrame, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.write_csv(path)
    return path


def _volume_in_units(frame: pl.DataFrame, start: dt.date) -> pl.DataFrame:
    """``frame`` with its volume from ``start`` on 1000 times larger: a vendor that switched
    from thousands of shares to shares."""
    scale = pl.when(pl.col("date") >= start).then(1000.0).otherwise(1.0)
    return frame.with_columns(pl.col("volume") * scale)


def _requests(conf: Path, version: str) -> None:
    """What a service answering /predict and probes would have written to its request log."""
    rng, now = np.random.default_rng(5), time.time()
    latencies = {"/predict": rng.lognormal(2.7, 0.4, 300), "/health": rng.exponential(0.3, 600)}
    records = [
        RequestRecord(now - 90.0 * k, endpoint, "GET", 200, float(ms), f"{endpoint}{k}", version, 1)
        for endpoint, values in latencies.items()
        for k, ms in enumerate(values)
    ]
    bootstrap.request_store(load_config(conf)).write(records)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Train, backtest, replay and monitor one project; the three pages and their JSON."""
    root = tmp_path_factory.mktemp("reports")
    nvda, before = _read("NVDA"), pl.col("date") < CUT
    train_nvda = _write(nvda.filter(before), root / "train" / "NVDA.csv")
    train_spy = _write(_read("SPY").filter(before), root / "train" / "SPY.csv")
    data = {"path": str(train_nvda), "benchmark_path": str(train_spy)}
    folds = {"folds": {"n_folds": 3, "test_size": 250}}  # fewer refits: the pages are the point
    conf = make_project(root, data=data, training=folds)
    summary = root / "out" / "train_summary.json"
    invoke_ok("train", "--config", str(conf), "--trials", "2", "--quiet", "--summary", str(summary))
    overlay(conf, "data", benchmark_path=str(SAMPLE / "SPY.csv"))  # the live days' benchmark
    invoke_ok("backtest", "--config", str(conf), "--output-dir", str(root / "backtest"))
    replay = ["--start", str(CUT), "--end", "2026-09-25", "--output", str(root / "replay.parquet")]
    invoke_ok("score", "--config", str(conf), "--data", str(SAMPLE / "NVDA.csv"), *replay)
    _requests(conf, json.loads(summary.read_text())["champion"]["version"])
    drifted = _write(_volume_in_units(nvda, DRIFT), root / "drifted" / "NVDA.csv")
    args = ["monitor", "--config", str(conf), "--data", str(drifted), "--output-dir"]
    monitored = CliRunner().invoke(main, [*args, str(root / "monitor")], catch_exceptions=False)
    assert monitored.exit_code == 3, monitored.output  # the volume's new unit alerts
    return {
        "root": root,
        "train": (summary.parent / "report.html", summary),
        "backtest": (root / "backtest" / "report.html", root / "backtest" / "metrics.json"),
        "monitor": (root / "monitor" / "report.html", root / "monitor" / "monitor.json"),
    }


def _png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    return width, height


def _shoot(name: str, visit: Visit, tmp: Path) -> None:
    """The page's first screen; the README's three into $STOCKPIPE_SCREENSHOTS when set."""
    assert _png_size(visit.png) == (1280, 800)
    wanted = os.environ.get("STOCKPIPE_SCREENSHOTS")
    folder = Path(wanted) if wanted and name in ("train", "backtest", "monitor") else tmp
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"report_{name}.png").write_bytes(visit.png)


WALK_FORWARD = {"walkforward-folds", "walkforward-sharpe", "forecast-scatter", "forecast-coverage"}
STRATEGY = {"strategy-equity", "strategy-monthly", "strategy-rolling", "strategy-costs"}
CHARTS = {  # every chart each page must draw
    "train": {f"h1-{c}" for c in WALK_FORWARD | STRATEGY}
    | {"h1-competition-history", "h1-competition-importance", "h1-forecast-selection"},
    "backtest": WALK_FORWARD | STRATEGY,
    "monitor": {"drift-excess", "live-skill", "latency"},
    "panel": PANEL_CHARTS,
}


@pytest.fixture(scope="module")
def pages(project: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The project's pages and a panel's backtest page (drawn here: no training needed)."""
    _, _, page, doc = draw_panel(tmp_path_factory.mktemp("panel"))
    return {**project, "panel": (page, doc)}


@pytest.mark.parametrize("name", ["train", "backtest", "monitor", "panel"])
def test_each_page_renders_in_chromium_with_the_jsons_numbers(
    browser: Browser, pages: dict[str, Any], name: str, tmp_path: Path
) -> None:
    page, doc = pages[name]
    visit = browser.visit(page)
    assert visit.errors() == []
    assert visit.requests() == [page.as_uri()]  # nothing fetched: the page is self-contained
    found = visit.found
    assert found["scripts"] == 0 and found["failed"] == 0  # nothing left undrawn
    drawn = {chart: rest for chart, *rest in found["charts"]}
    assert set(drawn) == CHARTS[name]
    for chart, (failed, marks, width, height) in drawn.items():
        assert not failed and marks > 0 and width > 200 and height > 50, chart
    pointers = check_numbers([tuple(n) for n in found["numbers"]], json.loads(doc.read_text()))
    assert len(pointers) > 40
    _shoot(name, visit, tmp_path)


def test_the_monitor_page_puts_the_alert_on_top(browser: Browser, project: dict[str, Any]) -> None:
    page, doc = project["monitor"]
    report = json.loads(doc.read_text())
    visit = browser.visit(page)
    assert report["status"] == "alert" and "ALERT" in visit.found["verdict"]
    assert report["drift"]["data"]["volume_level_5"]["status"] == "alert"
    first = visit.found["numbers"][0]  # the verdict is the page's first number
    assert first[0] == "/status" and first[3] == "alert"
    shown = {n[0] for n in visit.found["numbers"]}
    assert {"/health/latency/~1predict/p99_ms", "/performance/band/ic/warn_below"} <= shown


def test_the_train_report_is_on_the_run_and_the_version_links_to_it(
    project: dict[str, Any], tmp_path: Path
) -> None:
    page, summary = project["train"]
    champion = json.loads(summary.read_text())["champion"]
    run_id = champion["parent_run_id"]
    client = mlflow.MlflowClient(tracking_uri=sqlite_uri(project["root"]))
    assert "report.html" in {a.path for a in client.list_artifacts(run_id)}  # the run's root
    logged = Path(client.download_artifacts(run_id, "report.html", str(tmp_path)))
    assert logged.read_bytes() == page.read_bytes()
    version = client.get_model_version(champion["registered_model"], champion["version"])
    assert f"runs:/{run_id}/report.html" in version.description
    assert f"(#/runs/{run_id})" in version.description  # the UI's link to the run
