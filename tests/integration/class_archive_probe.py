"""A pipeline driver that must map the class archive given as argv[1] (``-Xshare:on``: the JVM refuses to start
otherwise) and logs where each class came from to argv[2]."""

import sys

from pipeline.engine.spark import get_spark

if __name__ == "__main__":
    archive, class_log = sys.argv[1], sys.argv[2]
    spark = get_spark(archive_opts=f"-XX:SharedArchiveFile={archive} -Xshare:on -Xlog:class+load=info:file={class_log}")
    runtime = spark.sparkContext._jvm.java.lang.management.ManagementFactory.getRuntimeMXBean()
    print("JVM_OPTIONS", " ".join(runtime.getInputArguments()), flush=True)
    print("DATABASES", sorted(r[0] for r in spark.sql("SHOW DATABASES").collect()), flush=True)
