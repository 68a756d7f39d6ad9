"""report.html: one self-contained page per `train`, `backtest` and `monitor` run.

Numbers come from the typed results only (:class:`~pipeline.training.summary.TrainSummary`,
:class:`~pipeline.evaluation.results.BacktestReport`,
:class:`~pipeline.monitoring.report.MonitorReport`): each shown value carries the JSON pointer
of its place in the JSON file written next to the page (``data-json``) and its exact value
(``data-value``), so a test can hold the page to the file. Charts draw series the results do
not hold (the equity curve, trials, drift over time) from the out-of-sample rows, through the
evaluation package's own functions.

Charts are static SVG from matplotlib (already a dependency), inlined: no JavaScript, nothing
fetched, a few hundred kilobytes per page, and every chart is an ``<svg>`` element a browser
test can find. Plotly (through ``optuna.visualization``) would inline about 3.5 MB of
JavaScript into every page, and Vega-Lite about 0.8 MB, for interactions nobody needs to
read a report.
"""
