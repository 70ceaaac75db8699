"""The tables of ``ecommerce_mart``: the marts analysts and the storefront read, their publication log,
the anomalies and their review log, data-quality results, SLA states and alerts.

Each entry gives the table's grain, its columns as Hive DDL and, when partitioned, its partition columns.
"""

DB = "ecommerce_mart"

PURCHASE_HISTORY_BUCKETS = 32  # mart_customer_purchase_history.customer_bucket = pmod(customer_id, 32)
DQ_SEVERITIES = ("error", "warn")  # dq_results.severity: "error" blocks a date's marts_ready, "warn" only records

TABLES: dict[str, dict] = {
    "mart_daily_sales": {
        "grain": "one row per invoice date and country",
        "columns": """country_key BIGINT, country_code STRING, country_name STRING, orders BIGINT, lines BIGINT,
            units BIGINT, gross_revenue DECIMAL(18,3), returns_amount DECIMAL(18,3), net_revenue DECIMAL(18,3),
            customers BIGINT, avg_order_value DECIMAL(18,3)""",
        "partition": "invoice_date DATE",
    },
    "mart_hourly_sales": {
        "grain": "one row per invoice date and hour of day",
        "columns": """hour INT, orders BIGINT, lines BIGINT, units BIGINT, gross_revenue DECIMAL(18,3),
            returns_amount DECIMAL(18,3), customers BIGINT, net_revenue DECIMAL(18,3)""",
        "partition": "invoice_date DATE",
    },
    "mart_product_performance": {
        "grain": "one row per invoice date and stock code",
        "columns": """stock_code STRING, product_key BIGINT, description STRING, is_merchandise BOOLEAN,
            orders BIGINT, units BIGINT, gross_revenue DECIMAL(18,3), returned_units BIGINT,
            returns_amount DECIMAL(18,3), avg_price_paid DECIMAL(12,3), list_unit_price DECIMAL(12,3)""",
        "partition": "invoice_date DATE",
    },
    "mart_customer_purchase_history": {
        "grain": "one row per invoice line of a known customer (the purchase history the storefront reads)",
        "columns": """invoice_date DATE, customer_id INT, invoice_no STRING, invoice_ts TIMESTAMP, stock_code STRING,
            description STRING, quantity INT, unit_price_paid DECIMAL(12,3), line_amount DECIMAL(18,3),
            is_cancellation BOOLEAN, country_name STRING""",
        "partition": "invoice_month DATE, customer_bucket INT",
    },
    "mart_customer_rfm": {
        "grain": "one row per known customer with an order, as of each run date",
        "columns": """customer_key BIGINT, customer_id INT, last_order_date DATE, recency_days INT, frequency BIGINT,
            monetary_gbp DECIMAL(18,3), r_score INT, f_score INT, m_score INT, rfm_cell STRING, segment STRING""",
        "partition": "as_of_date DATE",
    },
    "mart_cohort_retention": {
        "grain": "one row per first-purchase month and months since it, as of each run date",
        "columns": """cohort_month DATE, months_since INT, activity_month DATE, cohort_customers BIGINT,
            customers_active BIGINT, retention_rate DECIMAL(6,4)""",
        "partition": "as_of_date DATE",
    },
    "marts_ready": {
        "grain": "one row per invoice date and publication of its marts: revision 0 when they were first ready, "
                 "one more per republication",
        "columns": """invoice_date DATE, ready_at TIMESTAMP, marts STRING, revision INT, first_ready_at TIMESTAMP,
            republished_at TIMESTAMP, reason STRING, input_revision STRING, invalidated_at TIMESTAMP""",
    },
    "anomalies": {
        "grain": "one row per flagged sale line and metric (quantity or line_amount), partitioned by invoice date",
        "columns": """line_id STRING, invoice_no STRING, stock_code STRING, invoice_ts TIMESTAMP, customer_key BIGINT,
            quantity INT, unit_price_paid DECIMAL(12,3), line_amount DECIMAL(18,3), metric STRING, value DOUBLE,
            baseline_lines BIGINT, baseline_median DOUBLE, baseline_spread DOUBLE, rule STRING, threshold DOUBLE,
            score DOUBLE, detected_at TIMESTAMP, status STRING, status_changed_by STRING,
            status_changed_at TIMESTAMP, baseline_scope STRING""",
        "partition": "invoice_date DATE",
    },
    "anomaly_status_log": {
        "grain": "one row per status change of a flagged line (who, when, why)",
        "columns": "line_id STRING, invoice_date DATE, status STRING, changed_by STRING, changed_at TIMESTAMP, "
                   "note STRING",
    },
    "dq_results": {
        "grain": "one row per data-quality check and run, partitioned by the invoice date checked",
        "columns": """run_id STRING, check_name STRING, check_type STRING, table_name STRING, severity STRING,
            status STRING, failing_rows BIGINT, sample_keys STRING, checked_at TIMESTAMP""",
        "partition": "invoice_date DATE",
    },
    "sla_status": {
        "grain": "one row per business day and mart group: its latest SLA evaluation",
        "columns": """mart_group STRING, deadline_at TIMESTAMP, state STRING, state_since TIMESTAMP, ready_at TIMESTAMP,
            expected_finish_at TIMESTAMP, late_feeds STRING, late_tasks STRING, tasks_left INT, evidence STRING,
            checked_at TIMESTAMP, invoice_date DATE""",
    },
    "sla_history": {
        "grain": "one row per business day, mart group and SLA state it entered, with the evaluation that saw it first",
        "columns": "invoice_date DATE, mart_group STRING, state STRING, since TIMESTAMP, evidence STRING",
    },
    "alerts": {
        "grain": "one row per alert and channel it was delivered on (or failed to be)",
        "columns": """alert_id STRING, batch_id STRING, kind STRING, severity STRING, subject STRING, body STRING,
            channel STRING, dedupe_key STRING, alert_condition STRING, created_at TIMESTAMP, sent_at TIMESTAMP,
            delivery_status STRING, attempts INT, error STRING""",
    },
}
