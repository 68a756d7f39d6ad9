-- Price history numbered from the newest row per ticker (1 = latest), so scoring can load
-- exactly the warm-up window it needs instead of the whole history.
CREATE OR REPLACE VIEW v_prices_recent AS
SELECT
    *,
    row_number() OVER (PARTITION BY ticker ORDER BY date DESC) AS rows_from_end
FROM v_prices;
