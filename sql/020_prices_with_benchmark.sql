-- Price history with a benchmark's close joined by date (NULL where the benchmark did not
-- trade), numbered from the newest row per ticker (1 = latest) so that scoring can load exactly
-- the warm-up window it needs. `bench` is bound by Python; NULL means no benchmark.
CREATE OR REPLACE MACRO prices_with_benchmark(bench) AS TABLE
SELECT
    p.ticker,
    p.date,
    p.open,
    p.high,
    p.low,
    p.close,
    p.volume,
    b.close AS bench_close,
    row_number() OVER (PARTITION BY p.ticker ORDER BY p.date DESC) AS rows_from_end
FROM v_prices AS p
LEFT JOIN v_prices AS b ON b.date = p.date AND b.ticker = bench;
