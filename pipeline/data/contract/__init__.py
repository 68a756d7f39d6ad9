"""The price contract as a pandera ``DataFrameModel`` on pandera's Polars backend.

Import it, extend it and run it in a notebook like any pandera model::

    import pandera.polars as pa
    import polars as pl
    from pipeline.data.contract import PriceSchema
    from pipeline.data.validation import check_contract

    PriceSchema.validate(frame, lazy=True)  # SchemaErrors lists every broken rule at once

    class MySchema(PriceSchema):  # every rule of PriceSchema, plus one
        @pa.check("volume", error="volume must be > 0")
        @classmethod
        def traded(cls, data: pa.PolarsData) -> pl.LazyFrame:
            return data.lazyframe.select(pl.col("volume") > 0)

    # The pipeline's messages (file, column, rule, count, first rows) for the same schema:
    check_contract(frame, "my frame", schema=MySchema).raise_for_errors()

The pipeline runs the same model before every job and for every ``POST /predict``
(``check_contract`` in ``pipeline.data.validation`` calls ``broken_rules``), and reports in
the contract's words: file, column, rule, count and the first offending lines. Rules that need
the policy or a file's raw text stay outside the schema: the warnings (big moves, gaps,
staleness) in ``validation.py``; the missing-value policy and stored types in ``readers.py``.

This package imports pandera (~0.5 s), so ``validation.py`` imports it only when it validates.
"""

from pipeline.data.contract.report import Broken, broken_rules, pandera_broken_rules
from pipeline.data.contract.schema import PriceSchema
from pipeline.data.price_rules import KEEPS

__all__ = ["KEEPS", "Broken", "PriceSchema", "broken_rules", "pandera_broken_rules"]
