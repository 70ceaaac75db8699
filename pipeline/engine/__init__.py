"""The engine: the Spark session and the services it runs on (metastore, HiveServer2, luigid)."""
