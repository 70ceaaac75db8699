# The pipeline image: the same code and pinned Python dependencies as the embedded mode (setup.cfg), with Java
# for Spark. One image runs the Luigi workers (scheduler container), the Hive metastore (PostgreSQL JDBC driver
# from Debian), the Spark master and workers, the Spark Thrift Server (HiveServer2, with LDAP logins:
# conf/docker/hiveserver2.py), luigid and the dashboard; docker-compose.yaml picks the command and gives each
# container only its own secrets and HDFS identity (HADOOP_USER_NAME). The image holds no secret. The LDAP
# directory is an image of its own: conf/docker/ldap.Dockerfile.
FROM python:3.11.7-slim-bookworm

# the JDK, not only the JRE: HiveServer2 compiles its query guard (pipeline.engine.query_guard) with javac on its
# first start
RUN apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jdk-headless libpostgresql-jdbc-java procps tini \
 && rm -rf /var/lib/apt/lists/*
ENV JAVA_HOME=/usr/lib/jvm/java-17-openjdk-amd64 \
    SPARK_WORKER_DIR=/var/lib/ecommerce/spark-work \
    PYTHONUNBUFFERED=1 \
    ECOM_PROFILE=cluster

RUN useradd --create-home --uid 1000 ecommerce
WORKDIR /app
COPY setup.cfg pyproject.toml luigi.cfg ./
COPY pipeline ./pipeline
COPY dashboard ./dashboard
COPY conf ./conf
COPY data ./data
COPY .streamlit ./.streamlit
# editable: the code finds luigi.cfg, conf/ and data/ beside it, as in a checkout
RUN pip install --no-cache-dir -e '.[cluster]'
RUN mkdir -p /var/lib/ecommerce && chown ecommerce /var/lib/ecommerce
USER ecommerce
ENTRYPOINT ["tini", "--"]
CMD ["python", "-m", "pipeline", "--help"]
