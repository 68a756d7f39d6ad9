-- Price history of the requested (ticker, first_date, last_date) ranges, with a benchmark's
-- close joined by date (NULL where the benchmark did not trade).
-- Both arguments are bound by Python: `bench` (NULL = none) and `ranges`, a list of
-- STRUCT(ticker, first_date, last_date): a job reads back exactly its input's date range even
-- when earlier loads left longer histories in the warehouse.
CREATE OR REPLACE MACRO prices_with_benchmark(bench, ranges) AS TABLE
WITH r AS (
    SELECT unnest(ranges, recursive := true)
),
p AS (
    SELECT v.*
    FROM v_prices AS v
    INNER JOIN r ON v.ticker = r.ticker AND v.date BETWEEN r.first_date AND r.last_date
)
SELECT
    p.ticker,
    p.date,
    p.open,
    p.high,
    p.low,
    p.close,
    p.volume,
    b.close AS bench_close
FROM p
LEFT JOIN v_prices AS b ON b.date = p.date AND b.ticker = bench;
