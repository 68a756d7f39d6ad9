-- Price history restricted to the panel currently being trained and its input's date range
-- (table `panel`).
CREATE OR REPLACE VIEW v_panel_prices AS
SELECT v.*
FROM v_prices AS v
SEMI JOIN panel AS p
    ON v.ticker = p.ticker AND v.date BETWEEN p.first_date AND p.last_date;
