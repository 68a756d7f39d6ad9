"""`stockpipe monitor` reads the service's request log (issue 24 item 4): on a real project (a
fitted pipeline in a real sqlite MLflow registry, the request log's real SQLite file beside the
warehouse, where `serve` writes it), health reports the latency per endpoint of the requests of
the last `window` calendar days, equal to numpy.percentile (method 'linear') on those rows,
even though the API logged no prediction; a request older than the window is left out."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from support import fitted_model, invoke_ok, make_project, sample_prices

from pipeline import bootstrap
from pipeline.config import load_config
from pipeline.serving.requeststore import RequestRecord

DAY = 86_400.0


@pytest.mark.slow  # logs a real model (a few seconds)
def test_monitor_reports_the_services_latency_per_endpoint(tmp_path: Path) -> None:
    conf = make_project(tmp_path)
    cfg = load_config(conf)
    fitted = fitted_model()
    with bootstrap.tracker(cfg).start_run("fit") as run:
        example = sample_prices("NVDA").tail(fitted.warmup + 5).to_pandas()
        uri = run.log_model(fitted.predictor, example, {})
        tags = {"horizon": "1", "warmup_rows": str(fitted.warmup)}
        version = bootstrap.registry(cfg).register(uri, run.run_id, tags)
    rng = np.random.default_rng(3)
    latencies = {"/predict": rng.lognormal(2.7, 0.4, 400), "/health": rng.exponential(0.3, 834)}
    now = time.time()
    records = [
        RequestRecord(now - 60.0 * k, endpoint, "GET", 200, float(ms), f"{endpoint}{k}", version, 1)
        for endpoint, values in latencies.items()
        for k, ms in enumerate(values)
    ]
    old = RequestRecord(now - 61 * DAY, "/predict", "POST", 200, 9e9, "old", version, 1)
    bootstrap.request_store(cfg).write([old, *records])  # what `serve` wrote
    out = tmp_path / "out"
    model = f"models:/{cfg.tracking.registered_model}/{version}"
    result = invoke_ok(
        "monitor", "--config", str(conf), "--model-uri", model, "--output-dir", str(out)
    )
    health = json.loads((out / "monitor.json").read_text())["health"]
    assert health["requests"] == 0 and health["first_request"] is None  # no API prediction
    assert health["logged_requests"] == 1234 and health["latency_method"] == "linear"
    for endpoint, values in latencies.items():
        got = health["latency"][endpoint]
        want = np.percentile(values, [50, 95, 99], method="linear")
        assert [got["p50_ms"], got["p95_ms"], got["p99_ms"]] == pytest.approx(want, rel=1e-12)
        assert got["requests"] == len(values)
    p = health["latency"]["/predict"]
    line = f"health: 1,234 requests; /predict p50 {p['p50_ms']:,.1f} ms p95 {p['p95_ms']:,.1f} ms"
    assert line in result.output
