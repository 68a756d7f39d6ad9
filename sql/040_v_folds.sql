-- Walk-forward fold manifest over the trading calendar.
-- The last test window ends on the last labelled day and earlier ones start `step` days apart
-- (step = test_size by default, so test windows tile the end of history without overlap).
-- Each train window ends `purge + embargo` days before its test window starts, so no
-- training label (t, t + horizon] reaches a test day.
-- Walk-forward training never follows its test window, so the embargo acts as extra gap.
-- Rows and days are counted from each ticker's first usable row (past the feature warm-up,
-- `warmup` rows), so train_start, train_rows and train_days say what a fold really trains on.
CREATE OR REPLACE VIEW v_folds AS
WITH p AS (
    SELECT * FROM fold_params
),
usable AS (
    SELECT date
    FROM (
        SELECT date, row_number() OVER (PARTITION BY ticker ORDER BY date) - 1 AS i
        FROM v_panel_prices
    )
    WHERE i >= (SELECT warmup FROM fold_params)
),
labelled AS (
    SELECT CAST(count(*) AS INTEGER) AS n FROM v_calendar WHERE label_known
),
fold_ids AS (
    SELECT CAST(k AS INTEGER) AS fold FROM p, range(p.n_folds) AS r(k)
),
bounds AS (
    SELECT
        f.fold,
        l.n - 1 - (p.n_folds - 1 - f.fold) * coalesce(p.step, p.test_size)
            - p.test_size + 1 AS test_start_idx,
        l.n - 1 - (p.n_folds - 1 - f.fold) * coalesce(p.step, p.test_size) AS test_end_idx,
        l.n - 1 - (p.n_folds - 1 - f.fold) * coalesce(p.step, p.test_size)
            - p.test_size - p.purge - p.embargo AS train_end_idx,
        p.scheme,
        p.max_train_size
    FROM fold_ids AS f, labelled AS l, p
),
idx AS (
    SELECT
        fold,
        CASE
            WHEN scheme = 'sliding' AND max_train_size IS NOT NULL
                THEN greatest(0, train_end_idx - max_train_size + 1)
            ELSE 0
        END AS train_start_idx,
        train_end_idx,
        test_start_idx,
        test_end_idx
    FROM bounds
)
SELECT
    idx.fold,
    (SELECT min(u.date) FROM usable AS u WHERE u.date BETWEEN c1.date AND c2.date) AS train_start,
    c2.date AS train_end,
    c3.date AS test_start,
    c4.date AS test_end,
    (SELECT count(DISTINCT u.date) FROM usable AS u WHERE u.date BETWEEN c1.date AND c2.date)
        AS train_days,
    idx.test_end_idx - idx.test_start_idx + 1 AS test_days,
    (SELECT count(*) FROM usable AS u WHERE u.date BETWEEN c1.date AND c2.date) AS train_rows,
    (SELECT count(*) FROM usable AS u WHERE u.date BETWEEN c3.date AND c4.date) AS test_rows
FROM idx
LEFT JOIN v_calendar AS c1 ON c1.day_idx = idx.train_start_idx
LEFT JOIN v_calendar AS c2 ON c2.day_idx = idx.train_end_idx
LEFT JOIN v_calendar AS c3 ON c3.day_idx = idx.test_start_idx
LEFT JOIN v_calendar AS c4 ON c4.day_idx = idx.test_end_idx
ORDER BY idx.fold;
