# The Hive metastore image with the PostgreSQL JDBC driver (the apache/hive image ships none).
FROM apache/hive:4.0.1
ADD --chmod=644 https://repo1.maven.org/maven2/org/postgresql/postgresql/42.7.4/postgresql-42.7.4.jar /opt/hive/lib/postgresql.jar
