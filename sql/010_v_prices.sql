-- Typed, clean daily price history: one row per (ticker, date), ordered.
-- open, high, low and volume are NULL where the source was close-only.
CREATE OR REPLACE VIEW v_prices AS
SELECT
    ticker,
    date,
    open,
    high,
    low,
    close,
    volume
FROM prices
ORDER BY ticker, date;
