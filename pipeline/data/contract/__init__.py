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

``PriceSchema`` is built from the contract's rules (``pipeline.data.rules``), which the
pipeline evaluates itself in one Polars pass before every job and for every ``POST /predict``;
pandera runs only for a subclass, for the checks it adds. Rules that need the policy or a
file's raw text stay outside the schema: the warnings (big moves, gaps, staleness) in
``validation.py``; the missing-value policy and stored types in ``readers.py``.

This package imports pandera (~0.5 s); nothing else in ``pipeline.data`` imports it.
"""

from pipeline.data.contract.report import broken_rules, pandera_broken_rules, user_broken_rules
from pipeline.data.contract.schema import PriceSchema
from pipeline.data.rules import Broken

__all__ = ["Broken", "PriceSchema", "broken_rules", "pandera_broken_rules", "user_broken_rules"]
