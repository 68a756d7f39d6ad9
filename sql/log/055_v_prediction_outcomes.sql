-- Each logged prediction next to what happened (DuckDB, run per query by
-- DuckDBStore.outcomes): the forward log return over its horizon, ln(close[t + h] / close[t])
-- counted in the ticker's own trading rows. `predictions` is the SQLite log's rows, registered
-- on the connection (DuckDB cannot scan SQLite offline), hence a TEMP view: it lives and dies
-- with that connection and never enters the warehouse file. `realised` is NULL until the price
-- `horizon` rows after the as-of date is in the warehouse; performance monitoring reads the
-- rows where it is known. One row per logged row, of every source: the same prediction key may
-- appear once per source (monitor chooses which to grade).
CREATE OR REPLACE TEMP VIEW v_prediction_outcomes AS
WITH indexed AS (
    SELECT ticker, date, close, row_number() OVER (PARTITION BY ticker ORDER BY date) AS i
    FROM prices
)
SELECT
    p.*,
    f.date AS realised_date,
    ln(f.close / b.close) AS realised
FROM predictions AS p
LEFT JOIN indexed AS b ON b.ticker = p.ticker AND b.date = p.as_of_date
LEFT JOIN indexed AS f ON f.ticker = p.ticker AND f.i = b.i + p.horizon
ORDER BY p.model_name, p.model_version, p.ticker, p.as_of_date, p.horizon, p.source;
