"""The tables of ``ecommerce_db``: the feeds as loaded, their quarantines and the batch accounting.

Each entry gives the table's grain, its columns as Hive DDL and, when partitioned, its partition columns.
"""

DB = "ecommerce_db"

TABLES: dict[str, dict] = {
    "transactions_raw": {
        "grain": "one row per loaded transaction log line, partitioned by the batch that delivered it",
        "columns": """invoice_no STRING, stock_code STRING, description STRING, quantity INT,
            invoice_ts TIMESTAMP, unit_price DECIMAL(12,3), customer_id INT, country_name STRING,
            country_code STRING, is_cancellation BOOLEAN, is_negative_quantity BOOLEAN,
            is_nonpositive_price BOOLEAN, is_non_product BOOLEAN, source_file STRING, ingested_at TIMESTAMP,
            released_on DATE""",
        "partition": "batch_id STRING",
    },
    "products": {
        "grain": "one row per stock code version (SCD Type 2 on description and unit_price)",
        "columns": """product_key BIGINT, stock_code STRING, description STRING, unit_price DECIMAL(12,3),
            valid_from DATE, valid_to DATE, is_current BOOLEAN""",
    },
    "countries": {
        "grain": "one row per ISO country code (SCD Type 0: never rewritten)",
        "columns": """country_code STRING, country_name STRING, iso3 STRING, region STRING,
            continent STRING, source_country_name STRING, first_seen DATE""",
    },
    "transactions_quarantine": {
        "grain": "one row per rejected transaction line (batch_id, raw_line), with reason and attempts",
        "columns": """invoice_no STRING, stock_code STRING, description STRING, quantity STRING,
            invoice_date STRING, unit_price STRING, customer_id STRING, country STRING, raw_line STRING,
            source_file STRING, batch_id STRING, reason_code STRING, reason_detail STRING, attempts INT,
            first_seen_at TIMESTAMP, last_attempt_at TIMESTAMP, resolved_at TIMESTAMP, last_retry_date DATE""",
    },
    "batch_audit": {
        "grain": "one row per ingested batch of any feed (transaction window or master snapshot)",
        "columns": """batch_id STRING, feed STRING, window_start TIMESTAMP, window_end TIMESTAMP,
            source_files STRING, rows_received BIGINT, rows_loaded BIGINT, rows_quarantined BIGINT,
            rows_duplicate BIGINT, rows_released BIGINT, status STRING, started_at TIMESTAMP,
            finished_at TIMESTAMP, encoding STRING, extra_columns STRING, reason STRING""",
    },
    "batch_invoice_dates": {
        "grain": "one row per transaction batch and invoice date it carries lines for (late lines included)",
        "columns": "invoice_date DATE, rows_loaded BIGINT",
        "partition": "batch_id STRING",
    },
    "master_quarantine": {
        "grain": "one row per refused master snapshot record (feed, snapshot date, record), with its reason",
        "columns": """snapshot_date DATE, feed STRING, key STRING, raw_line STRING, source_file STRING,
            reason_code STRING, reason_detail STRING, quarantined_at TIMESTAMP""",
    },
    "master_data_warnings": {
        "grain": "one row per ignored master-data change (snapshot date, feed, key, attribute)",
        "columns": """snapshot_date DATE, feed STRING, key STRING, attribute STRING, kept_value STRING,
            snapshot_value STRING""",
    },
}
