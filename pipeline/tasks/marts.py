"""The date marts in ``ecommerce_mart`` built from one invoice date's facts: daily, hourly and per product.

    luigi --module pipeline.tasks.marts MartDailySales --date 2010-12-02
"""

from __future__ import annotations

from pipeline.io import warehouse as wh
from pipeline.tasks.base import DW, MART, TableForDate, read_dates
from pipeline.tasks.star import DimCountry, DimDate, FactSales
from pipeline.transforms import star


class MartDailySales(TableForDate):
    """``ecommerce_mart.mart_daily_sales`` partition of one invoice date."""

    table = f"{MART}.mart_daily_sales"

    def requires(self):
        return [FactSales(self.date, self.revision), DimCountry(self.date), DimDate()]

    def build(self, spark, dates):
        return star.mart_daily_sales(read_dates(spark, f"{DW}.fact_sales", dates),
                                     wh.read(spark, f"{DW}.dim_country"))


class MartHourlySales(TableForDate):
    """``ecommerce_mart.mart_hourly_sales`` partition of one invoice date."""

    table = f"{MART}.mart_hourly_sales"

    def requires(self):
        return FactSales(self.date, self.revision)

    def build(self, spark, dates):
        return star.mart_hourly_sales(read_dates(spark, f"{DW}.fact_sales", dates))


class MartProductPerformance(TableForDate):
    """``ecommerce_mart.mart_product_performance`` partition of one invoice date."""

    table = f"{MART}.mart_product_performance"

    def requires(self):
        return FactSales(self.date, self.revision)

    def build(self, spark, dates):
        return star.mart_product_performance(read_dates(spark, f"{DW}.fact_sales", dates),
                                             wh.read(spark, f"{DW}.dim_product"))
