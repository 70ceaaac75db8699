"""Transaction log lines -> loaded rows, quarantined rows and dropped duplicates (pure transforms)."""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from pipeline.transforms.columns import non_product_flag

SOURCE_FIELDS = ["invoice_no", "stock_code", "description", "quantity", "invoice_date", "unit_price",
                 "customer_id", "country"]
DATE_FORMATS = ["yyyy-MM-dd HH:mm:ss", "yyyy-MM-dd HH:mm", "yyyy-MM-dd'T'HH:mm:ss", "yyyy-MM-dd'T'HH:mm",
                "M/d/yyyy H:mm", "M/d/yyyy H:mm:ss"]
RETRYABLE_REASONS = ("UNKNOWN_PRODUCT", "UNKNOWN_COUNTRY")
PRICE_TYPE = "decimal(12,3)"
# A line amount this large (GBP) cannot be real, and a day of such lines would overflow the marts' sums.
MAX_LINE_AMOUNT = 10**12
LINE_COLUMNS = ["batch_id", "source_file", "raw_line", *SOURCE_FIELDS, "record_error_code",
                "record_error_detail"]


@dataclass(frozen=True)
class DateRange:
    """How far a line's timestamp may lie from its batch window: ``after_end_minutes`` past the window's end,
    ``before_start_days`` before its start."""

    after_end_minutes: int = 60
    before_start_days: int = 31

LOADED_COLUMNS = ["invoice_no", "stock_code", "description", "quantity", "invoice_ts", "unit_price",
                  "customer_id", "country_name", "country_code", "is_cancellation", "is_negative_quantity",
                  "is_nonpositive_price", "is_non_product", "released_on", "source_file", "batch_id"]
QUARANTINE_FIELDS = [*SOURCE_FIELDS, "raw_line", "source_file", "batch_id", "reason_code", "reason_detail"]


def mark_duplicates(lines: DataFrame) -> DataFrame:
    """Flag exact duplicate lines of a batch (same record text); the first copy is kept.

    Input: one row per data record of a batch file: ``batch_id, source_file, raw_line``.
    """
    w = Window.partitionBy("batch_id", "raw_line").orderBy("source_file")
    return lines.withColumn("is_duplicate", F.row_number().over(w) > 1)


def _trimmed(name: str) -> Column:
    return F.nullif(F.trim(F.col(name)), F.lit(""))


def _quoted(label: str, name: str) -> Column:
    return F.concat(F.lit(f"{label} "), F.coalesce(F.concat(F.lit("'"), F.col(name), F.lit("'")), F.lit("NULL")))


def type_fields(parsed: DataFrame) -> DataFrame:
    """Typed columns from the text fields; a value that does not parse stays NULL (reason set later)."""
    amount = F.col("_quantity").cast("decimal(10,0)") * F.col("_unit_price")
    ts = F.coalesce(*[F.try_to_timestamp(_trimmed("invoice_date"), F.lit(f)) for f in DATE_FORMATS])
    qty_ok = _trimmed("quantity").rlike(r"^[+-]?\d{1,9}$")
    price_ok = _trimmed("unit_price").rlike(r"^[+-]?\d{1,9}(\.\d{1,3})?$")
    customer = _trimmed("customer_id")
    customer_ok = customer.isNull() | customer.rlike(r"^\d{1,9}(\.0+)?$")
    return parsed.select(
        "*",
        _trimmed("invoice_no").alias("_invoice_no"),
        _trimmed("stock_code").alias("_stock_code"),
        F.when(qty_ok, _trimmed("quantity").cast("int")).alias("_quantity"),
        ts.alias("_invoice_ts"),
        F.when(price_ok, _trimmed("unit_price").cast(PRICE_TYPE)).alias("_unit_price"),
        F.when(customer_ok, F.regexp_extract(customer, r"^(\d+)", 1).cast("int")).alias("_customer_id"),
        customer_ok.alias("_customer_ok"),
        _trimmed("country").alias("_country"),
    ).withColumn("_amount_ok", F.abs(amount) < F.lit(MAX_LINE_AMOUNT))


def classify_lines(
    lines: DataFrame, product_codes: DataFrame, countries: DataFrame, non_product_patterns: list[str],
    date_range: DateRange = DateRange(),
) -> DataFrame:
    """Decide the fate of every received line: ``loaded``, ``quarantined`` (with a reason) or ``duplicate``.

    ``lines``: one row per received record, ``LINE_COLUMNS`` (the eight source fields as text, and the
    reason a record could not be split into them), optionally ``is_duplicate`` (else ``mark_duplicates``
    finds the repeated records), ``masters_date`` and the batch's
    ``window_start, window_end``: a line dated after the window's end (plus ``date_range``'s tolerance) or
    too long before its start is ``OUT_OF_RANGE_DATE``.

    ``product_codes``: ``stock_code`` of every product the master knows (any version), optionally with
    ``known_from``, the first snapshot date that listed it. ``countries``: ``source_country_name,
    country_code`` known to the countries master, optionally with ``known_from``. When ``lines`` carry
    ``masters_date`` (the snapshot a batch is checked against), a code counts as known only if it was known
    on that date, so the outcome does not depend on which later snapshots are already loaded.
    Cancellations, negative quantities, zero or negative prices and non-product codes are business
    events: they are loaded and flagged, never quarantined. Grain: one row per received line.
    """
    typed = type_fields(lines if "is_duplicate" in lines.columns else mark_duplicates(lines))
    for column, kind in (("masters_date", "date"), ("window_start", "timestamp"), ("window_end", "timestamp")):
        if column not in typed.columns:
            typed = typed.withColumn(column, F.lit(None).cast(kind))
    too_late = F.col("_invoice_ts") > F.col("window_end") + F.make_dt_interval(
        mins=F.lit(date_range.after_end_minutes))
    too_early = F.col("_invoice_ts") < F.col("window_start") - F.make_dt_interval(
        days=F.lit(date_range.before_start_days))

    def since(df: DataFrame) -> Column:
        return F.col("known_from") if "known_from" in df.columns else F.lit(None).cast("date")

    def in_force(column: str) -> Column:
        return F.col(column).isNull() | F.col("masters_date").isNull() | (F.col(column) <= F.col("masters_date"))

    known_products = product_codes.select(F.col("stock_code").alias("_known_code"), since(product_codes).alias("_p")) \
        .groupBy("_known_code").agg(F.min("_p").alias("_product_from"))
    known_countries = countries.select(
        F.col("source_country_name").alias("_known_country"), F.col("country_code").alias("_country_code"),
        since(countries).alias("_country_from")
    ).dropDuplicates(["_known_country"])
    joined = (
        typed.join(F.broadcast(known_products),
                   (typed["_stock_code"] == F.col("_known_code")) & in_force("_product_from"), "left")
        .join(F.broadcast(known_countries),
              (typed["_country"] == F.col("_known_country")) & in_force("_country_from"), "left")
    )
    fmt_list = ", ".join(DATE_FORMATS)
    reason = (
        F.when(F.col("record_error_code").isNotNull(),
               F.struct(F.col("record_error_code").alias("code"), F.col("record_error_detail").alias("detail")))
        .when(F.col("_invoice_no").isNull(),
              F.struct(F.lit("MISSING_INVOICE_NO").alias("code"), F.lit("InvoiceNo is empty").alias("detail")))
        .when(F.col("_stock_code").isNull(),
              F.struct(F.lit("MISSING_STOCK_CODE").alias("code"), F.lit("StockCode is empty").alias("detail")))
        .when(F.col("_quantity").isNull(),
              F.struct(F.lit("BAD_QUANTITY").alias("code"),
                       F.concat(_quoted("Quantity", "quantity"), F.lit(" is not an integer")).alias("detail")))
        .when(F.col("_invoice_ts").isNull(),
              F.struct(F.lit("BAD_DATE").alias("code"),
                       F.concat(_quoted("InvoiceDate", "invoice_date"),
                                F.lit(f" matches none of: {fmt_list}")).alias("detail")))
        .when(F.col("_unit_price").isNull(),
              F.struct(F.lit("BAD_PRICE").alias("code"),
                       F.concat(_quoted("UnitPrice", "unit_price"),
                                F.lit(" is not a decimal with at most 3 places")).alias("detail")))
        .when(~F.col("_amount_ok"),
              F.struct(F.lit("BAD_AMOUNT").alias("code"),
                       F.concat(_quoted("Quantity", "quantity"), F.lit(" x "), _quoted("UnitPrice", "unit_price"),
                                F.lit(f" is not below {MAX_LINE_AMOUNT:,} GBP")).alias("detail")))
        .when(F.coalesce(too_late | too_early, F.lit(False)),
              F.struct(F.lit("OUT_OF_RANGE_DATE").alias("code"),
                       F.concat(_quoted("InvoiceDate", "invoice_date"),
                                F.format_string(
                                    f" is after the batch window's end %s (+{date_range.after_end_minutes} min) "
                                    f"or more than {date_range.before_start_days} days before its start %s",
                                    F.col("window_end").cast("string"), F.col("window_start").cast("string")))
                       .alias("detail")))
        .when(~F.col("_customer_ok"),
              F.struct(F.lit("BAD_CUSTOMER_ID").alias("code"),
                       F.concat(_quoted("CustomerID", "customer_id"),
                                F.lit(" is not a numeric id")).alias("detail")))
        .when(F.col("_country_code").isNull(),
              F.struct(F.lit("UNKNOWN_COUNTRY").alias("code"),
                       F.concat(_quoted("Country", "country"),
                                F.lit(" is not in the countries master")).alias("detail")))
        .when(F.col("_known_code").isNull(),
              F.struct(F.lit("UNKNOWN_PRODUCT").alias("code"),
                       F.concat(_quoted("StockCode", "stock_code"),
                                F.lit(" is not in the products master")).alias("detail")))
    )
    # the reason is evaluated once per line (a column of its own), not once per column derived from it
    return joined.withColumn("_reason", F.when(~F.col("is_duplicate"), reason)).select(
        "batch_id", "source_file", "raw_line", *SOURCE_FIELDS,
        F.when(F.col("is_duplicate"), F.lit("duplicate"))
        .when(F.col("_reason").isNotNull(), F.lit("quarantined")).otherwise(F.lit("loaded")).alias("outcome"),
        F.col("_reason.code").alias("reason_code"),
        F.col("_reason.detail").alias("reason_detail"),
        F.col("_invoice_no").alias("invoice_no_clean"),
        F.col("_stock_code").alias("stock_code_clean"),
        F.nullif(F.trim("description"), F.lit("")).alias("description_clean"),
        F.col("_quantity").alias("quantity_int"),
        F.col("_invoice_ts").alias("invoice_ts"),
        F.col("_unit_price").alias("unit_price_dec"),
        F.col("_customer_id").alias("customer_id_int"),
        F.col("_country").alias("country_name"),
        F.col("_country_code").alias("country_code"),
        F.coalesce(F.col("_invoice_no").startswith("C"), F.lit(False)).alias("is_cancellation"),
        F.coalesce(F.col("_quantity") < 0, F.lit(False)).alias("is_negative_quantity"),
        F.coalesce(F.col("_unit_price") <= 0, F.lit(False)).alias("is_nonpositive_price"),
        non_product_flag("_stock_code", non_product_patterns).alias("is_non_product"),
    )


def loaded_rows(classified: DataFrame, released: DataFrame | None = None, carry: tuple[str, ...] = ()) -> DataFrame:
    """Rows for ``ecommerce_db.transactions_raw``: one row per loaded invoice line.

    ``released`` (``batch_id, raw_line, released_on``): lines a quarantine retry released, and on which
    retry date; the others get a null ``released_on``. ``carry``: columns of ``classified`` kept as they are.
    """
    loaded = classified.where(F.col("outcome") == "loaded")
    if released is None:
        loaded = loaded.withColumn("released_on", F.lit(None).cast("date"))
    else:
        loaded = loaded.join(released.select("batch_id", "raw_line", "released_on"), ["batch_id", "raw_line"], "left")
    return loaded.select(
        F.col("invoice_no_clean").alias("invoice_no"),
        F.col("stock_code_clean").alias("stock_code"),
        F.col("description_clean").alias("description"),
        F.col("quantity_int").alias("quantity"),
        "invoice_ts",
        F.col("unit_price_dec").alias("unit_price"),
        F.col("customer_id_int").alias("customer_id"),
        "country_name", "country_code", "is_cancellation", "is_negative_quantity", "is_nonpositive_price",
        "is_non_product", "released_on", "source_file", "batch_id", *carry,
    )


def quarantined_rows(classified: DataFrame) -> DataFrame:
    """Rows for ``ecommerce_db.transactions_quarantine`` (source fields as text, reason)."""
    return classified.where(F.col("outcome") == "quarantined").select(*QUARANTINE_FIELDS)


def batch_counts(classified: DataFrame) -> DataFrame:
    """One row per batch: rows received, loaded, quarantined and duplicate."""
    return classified.groupBy("batch_id").agg(
        F.count(F.lit(1)).alias("rows_received"),
        F.sum((F.col("outcome") == "loaded").cast("long")).alias("rows_loaded"),
        F.sum((F.col("outcome") == "quarantined").cast("long")).alias("rows_quarantined"),
        F.sum((F.col("outcome") == "duplicate").cast("long")).alias("rows_duplicate"),
    )


def invoice_dates(loaded: DataFrame) -> DataFrame:
    """Per batch, the invoice dates its loaded lines carry: lets later steps rebuild exactly those dates."""
    return loaded.groupBy("batch_id", F.to_date("invoice_ts").alias("invoice_date")).agg(
        F.count(F.lit(1)).alias("rows_loaded"))


def merge_quarantine(existing: DataFrame, new_rows: DataFrame, batch_ids: list[str], now: Column) -> DataFrame:
    """Replace the open quarantine rows of reloaded batches, keeping first_seen_at and attempts of known lines.

    Resolved rows (lines released earlier) are history and are kept. Grain of the result: one row per
    quarantined line, keyed by ``batch_id, raw_line``.
    """
    reloaded = F.col("batch_id").isin(batch_ids)
    kept = existing.where(~reloaded | F.col("resolved_at").isNotNull())
    previous = existing.where(reloaded & F.col("resolved_at").isNull()).select(
        "batch_id", "raw_line", F.col("first_seen_at").alias("_first"), F.col("attempts").alias("_attempts"),
        F.col("last_attempt_at").alias("_last"), F.col("last_retry_date").alias("_retry"),
    )
    refreshed = (
        new_rows.join(kept.select("batch_id", "raw_line"), ["batch_id", "raw_line"], "left_anti")
        .join(previous, ["batch_id", "raw_line"], "left")
        .select(
            *QUARANTINE_FIELDS,
            F.coalesce("_attempts", F.lit(1)).alias("attempts"),
            F.coalesce("_first", now).alias("first_seen_at"),
            F.coalesce("_last", now).alias("last_attempt_at"),
            F.lit(None).cast("timestamp").alias("resolved_at"),
            F.col("_retry").alias("last_retry_date"),
        )
    )
    return kept.unionByName(refreshed)


def released_counts(classified: DataFrame, resolved: DataFrame) -> DataFrame:
    """Per batch, loaded lines that an earlier load had quarantined and a retry released."""
    loaded = classified.where(F.col("outcome") == "loaded").select("batch_id", "raw_line")
    return loaded.join(resolved.select("batch_id", "raw_line"), ["batch_id", "raw_line"]).groupBy("batch_id").agg(
        F.count(F.lit(1)).alias("rows_released")
    )
