-- The shared trading calendar of the panel: every date on which any ticker traded, indexed.
-- Dates whose label is not yet known (the last `horizon` days) are flagged, not dropped.
CREATE OR REPLACE VIEW v_calendar AS
WITH dates AS (
    SELECT DISTINCT date FROM v_panel_prices
),
indexed AS (
    SELECT
        date,
        CAST(row_number() OVER (ORDER BY date) - 1 AS INTEGER) AS day_idx,
        CAST(count(*) OVER () AS INTEGER) AS n_days
    FROM dates
)
SELECT
    i.date,
    i.day_idx,
    i.day_idx < i.n_days - p.horizon AS label_known
FROM indexed AS i
CROSS JOIN fold_params AS p;
