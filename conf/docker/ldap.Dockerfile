# The compose stack's LDAP directory for HiveServer2 logins: Debian's slapd (OpenLDAP 2.5, with its Argon2
# module), rebuilt from the environment at every start by ldap-seed.sh. Build context: conf/docker.
FROM debian:12.8-slim

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends slapd ldap-utils tini \
 && rm -rf /var/lib/apt/lists/* /etc/ldap/slapd.d /var/lib/ldap
COPY ldap-seed.sh /usr/local/bin/ldap-seed
# root only until slapd has bound port 389 and read its configuration: it then runs as openldap (-u/-g)
ENTRYPOINT ["tini", "--", "/usr/local/bin/ldap-seed"]
