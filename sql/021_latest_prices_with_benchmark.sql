-- The last `last_rows` rows per ticker of `prices_with_benchmark(bench, ranges)`: scoring
-- loads exactly the warm-up window it needs. A separate macro because numbering every row
-- from the newest (a window over the whole panel) doubled the time of a full read.
CREATE OR REPLACE MACRO latest_prices_with_benchmark(bench, ranges, last_rows) AS TABLE
SELECT *
FROM prices_with_benchmark(bench, ranges)
QUALIFY row_number() OVER (PARTITION BY ticker ORDER BY date DESC) <= last_rows;
