"""The tables of ``ecommerce_dw``: the star schema (dimensions, the sales fact, the customer-day aggregate).

Each entry gives the table's grain, its columns as Hive DDL and, when partitioned, its partition columns.
"""

DB = "ecommerce_dw"

TABLES: dict[str, dict] = {
    "dim_date": {
        "grain": "one row per calendar day, plus the unknown member -1",
        "columns": """date_key INT, date DATE, day_of_week INT, day_name STRING, is_weekend BOOLEAN,
            iso_week INT, month INT, month_name STRING, quarter INT, year INT, is_uk_bank_holiday BOOLEAN,
            bank_holiday_name STRING""",
    },
    "dim_product": {
        "grain": "one row per stock code version (SCD2), plus the unknown member -1",
        "columns": """product_key BIGINT, stock_code STRING, description STRING, unit_price DECIMAL(12,3),
            valid_from DATE, valid_to DATE, is_current BOOLEAN, is_merchandise BOOLEAN""",
    },
    "dim_country": {
        "grain": "one row per country code (SCD0); Unspecified is the unknown member -1",
        "columns": "country_key BIGINT, country_code STRING, iso3 STRING, country_name STRING, region STRING, "
                   "continent STRING",
    },
    "fact_sales": {
        "grain": "one row per loaded invoice line, partitioned by invoice date",
        "columns": """date_key INT, product_key BIGINT, country_key BIGINT, customer_key BIGINT, invoice_no STRING,
            stock_code STRING, invoice_ts TIMESTAMP, quantity INT, unit_price_paid DECIMAL(12,3),
            line_amount DECIMAL(18,3), list_unit_price DECIMAL(12,3), is_cancellation BOOLEAN,
            is_merchandise BOOLEAN, batch_id STRING""",
        "partition": "invoice_date DATE",
    },
    "customer_sales_daily": {
        "grain": "one row per known customer, invoice date and country (feeds the customer-level tables)",
        "columns": """customer_id INT, country_code STRING, orders BIGINT, lines BIGINT,
            gross_revenue DECIMAL(18,3), returns_amount DECIMAL(18,3)""",
        "partition": "invoice_date DATE",
    },
    "dim_customer": {
        "grain": "one row per known customer, plus the unknown member -1 for guests",
        "columns": """customer_key BIGINT, customer_id INT, home_country_code STRING, home_country_key BIGINT,
            first_order_date DATE, last_order_date DATE""",
    },
}
