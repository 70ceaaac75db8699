#!/bin/bash
# The hdfs-init service, at every `docker compose up` before the metastore, HiveServer2, the Spark workers and the
# scheduler start: as the HDFS superuser (hadoop, the user the namenode runs as), the directories of the cluster and
# their owners. HDFS checks permissions (dfs.permissions.enabled=true); identities (simple authentication) are
# HADOOP_USER_NAME of each container, groups are the namenode's static mapping (docker-compose.yaml):
#
#   /warehouse       pipeline:dw_readers 750   written by the pipeline only; HiveServer2 (hiveserver2, in
#                                              dw_readers) reads it; no one else may enter it
#   /user/pipeline   pipeline:pipeline   700   the pipeline's home
#   /tmp             hadoop:supergroup  1777   scratch for everyone (/tmp/hive: 1733, Hive's session directories)
#
# Files created below /warehouse take its group (HDFS) and are readable by it under the default umask (022).
# A warehouse written before permissions were on (owned by another user) is handed to pipeline once, recursively.
set -euo pipefail

hdfs dfsadmin -safemode wait
hdfs dfs -mkdir -p /tmp/hive /user/pipeline /warehouse
hdfs dfs -chmod 1777 /tmp
hdfs dfs -chmod 1733 /tmp/hive
hdfs dfs -chown pipeline:pipeline /user/pipeline
hdfs dfs -chmod 700 /user/pipeline
if [[ "$(hdfs dfs -stat '%u:%g' /warehouse)" != "pipeline:dw_readers" ]]; then
  echo "hdfs-init: handing /warehouse to pipeline:dw_readers (recursively)"
  hdfs dfs -chown -R pipeline:dw_readers /warehouse
fi
hdfs dfs -chmod 750 /warehouse
hdfs groups pipeline hiveserver2 hive dashboard || true  # the namenode's view, for the log
hdfs dfs -ls -d /tmp /tmp/hive /user/pipeline /warehouse
