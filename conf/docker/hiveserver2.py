"""The hiveserver2 container's command: the Spark Thrift Server of ``python -m pipeline services run hiveserver2``,
with LDAP logins instead of NOSASL.

``pipeline.engine.services.HiveServer2`` starts the embedded mode's server, which takes unauthenticated (NOSASL)
connections on loopback. In the compose stack it listens on the network, so this launcher takes the same command
line, replaces ``hive.server2.authentication=NOSASL`` with LDAP against the ``ldap`` service (``[hiveserver2]
authentication``, ``ldap_url``, ``ldap_base_dn`` of conf/docker/hiveserver2.cfg: a client's user name and password
are checked by a simple bind as ``uid=<user>,<ldap_base_dn>``), turns impersonation off (every query reads HDFS
as this server's own identity, ``HADOOP_USER_NAME``), and replaces itself with the server. It refuses to start
when it cannot do all of that, rather than serve without authentication.

    python conf/docker/hiveserver2.py     # in the image, ECOM_CONFIG_OVERLAY=/app/conf/docker/hiveserver2.cfg
"""

from __future__ import annotations

import os
import sys

from pipeline import config
from pipeline.engine import services

NOSASL = "hive.server2.authentication=NOSASL"


class NotAuthenticated(SystemExit):
    """The server would start without LDAP logins: it does not start."""


def ldap_argv(argv: list[str], cfg: config.hiveserver2) -> list[str]:
    """The embedded server's command line with LDAP authentication and no impersonation."""
    if cfg.authentication != "LDAP" or not cfg.ldap_url or not cfg.ldap_base_dn:
        raise NotAuthenticated("hiveserver2: [hiveserver2] authentication = LDAP, ldap_url and ldap_base_dn are "
                               "needed (ECOM_CONFIG_OVERLAY=conf/docker/hiveserver2.cfg); not starting")
    if argv.count(NOSASL) != 1 or argv[argv.index(NOSASL) - 1] != "--hiveconf":
        raise NotAuthenticated(f"hiveserver2: the server's command line has no single --hiveconf {NOSASL} to "
                               "replace (pipeline.engine.services.HiveServer2 changed?); not starting")
    i = argv.index(NOSASL)
    settings = {"hive.server2.authentication.ldap.url": cfg.ldap_url,
                "hive.server2.authentication.ldap.baseDN": cfg.ldap_base_dn,
                "hive.server2.enable.doAs": "false"}
    extra = [arg for key, value in settings.items() for arg in ("--hiveconf", f"{key}={value}")]
    return [*argv[:i], "hive.server2.authentication=LDAP", *argv[i + 1:], *extra]


def main() -> None:
    config.load_profile()
    server = next(svc for svc in services.all_services() if svc.name == "hiveserver2")
    argv, env, cwd = server.command()
    argv = ldap_argv(argv, config.hiveserver2())
    print(f"hiveserver2: LDAP logins ({config.hiveserver2().ldap_url}), HDFS as "
          f"{env.get('HADOOP_USER_NAME', 'the OS user')}", file=sys.stderr, flush=True)
    os.chdir(cwd)
    os.execvpe(argv[0], argv, env)


if __name__ == "__main__":
    main()
