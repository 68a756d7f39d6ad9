-- Price history of the requested (ticker, first_date, last_date) ranges, with the benchmark's
-- last close known at or before each date (an ASOF join: never a later one). A ticker that
-- trades on a day the benchmark does not (another exchange's calendar, a business-day fund)
-- sees the benchmark unchanged that day instead of a NULL that would void every market
-- window holding it; before the benchmark's first date it is NULL.
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
ASOF LEFT JOIN (SELECT date, close FROM v_prices WHERE ticker = bench) AS b ON p.date >= b.date;
