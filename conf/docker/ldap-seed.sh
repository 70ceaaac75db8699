#!/bin/bash
# The ldap service's entrypoint (conf/docker/ldap.Dockerfile): Debian's slapd with a directory built afresh at
# every start, holding only the accounts that may log in to HiveServer2:
#
#   uid=<name>,ou=people,dc=ecommerce-dw     for each name of $LDAP_ACCOUNTS (dashboard pipeline analyst)
#
# each with the password in this container's $HS2_<NAME>_PASSWORD (from .env; stored as an Argon2 hash). Nothing
# is kept between starts: change a password in .env, then `docker compose up -d ldap` (and restart the client
# that uses it). HiveServer2 binds as uid=<user>,ou=people,dc=ecommerce-dw with the password it was given
# (hive.server2.authentication.ldap.baseDN); anonymous binds are refused, no entry is readable by anyone but
# itself, and there is no LDAP administrator: the directory is rebuilt offline (slapadd), and root inside this
# container reaches the configuration over ldapi:// (EXTERNAL), as the health check does.
#
# Variables (defaults for the container; the test suite runs it elsewhere with its own paths and port):
#   LDAP_SUFFIX (dc=ecommerce-dw), LDAP_ACCOUNTS, LDAP_CONF_DIR (/etc/ldap/slapd.d), LDAP_DB_DIR (/var/lib/ldap),
#   LDAP_URLS ("ldap:/// ldapi:///"), LDAP_RUN_DIR (/run/slapd: the ldapi socket), LDAP_USER (openldap),
#   LDAP_LOG_LEVEL (stats: one line per bind and its result, no secrets)
set -euo pipefail

SUFFIX=${LDAP_SUFFIX:-dc=ecommerce-dw}
PEOPLE="ou=people,$SUFFIX"
ACCOUNTS=${LDAP_ACCOUNTS:-dashboard pipeline analyst}
CONF_DIR=${LDAP_CONF_DIR:-/etc/ldap/slapd.d}
DB_DIR=${LDAP_DB_DIR:-/var/lib/ldap}
URLS=${LDAP_URLS:-ldap:/// ldapi:///}
RUN_DIR=${LDAP_RUN_DIR:-/run/slapd}
RUN_AS=${LDAP_USER:-openldap}
MODULES=/usr/lib/ldap

missing=()
for name in $ACCOUNTS; do
  var="HS2_${name^^}_PASSWORD"
  [[ -n "${!var:-}" ]] || missing+=("$var")
done
if (( ${#missing[@]} )); then
  echo "ldap: set ${missing[*]} in .env (the HiveServer2 accounts' passwords)" >&2
  exit 1
fi

rm -rf "${CONF_DIR:?}" "${DB_DIR:?}"
mkdir -p "$CONF_DIR" "$DB_DIR" "$RUN_DIR"

# cn=config: the schema for inetOrgPerson, one MDB database, Argon2 password hashes; only root over ldapi://
# manages the configuration, and no rootdn exists for the data
slapadd -n 0 -F "$CONF_DIR" -l /dev/stdin <<LDIF
dn: cn=config
objectClass: olcGlobal
cn: config
olcDisallows: bind_anon

dn: cn=module{0},cn=config
objectClass: olcModuleList
cn: module{0}
olcModulePath: $MODULES
olcModuleLoad: back_mdb
olcModuleLoad: argon2

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

include: file:///etc/ldap/schema/core.ldif
include: file:///etc/ldap/schema/cosine.ldif
include: file:///etc/ldap/schema/inetorgperson.ldif

dn: olcDatabase={-1}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {-1}frontend
olcRequires: authc

dn: olcDatabase={0}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {0}config
olcAccess: {0}to * by dn.exact=gidNumber=0+uidNumber=0,cn=peercred,cn=external,cn=auth manage by * none

dn: olcDatabase={1}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {1}mdb
olcSuffix: $SUFFIX
olcDbDirectory: $DB_DIR
olcDbMaxSize: 16777216
olcDbIndex: objectClass eq
olcDbIndex: uid eq
olcAccess: {0}to attrs=userPassword by anonymous auth by * none
olcAccess: {1}to * by self read by * none
LDIF

hash() {  # an Argon2 hash of $1; the password reaches slappasswd through a pipe, never its command line
  slappasswd -o module-path="$MODULES" -o module-load=argon2 -h '{ARGON2}' -T <(printf '%s' "$1")
}

{
  printf 'dn: %s\nobjectClass: dcObject\nobjectClass: organization\ndc: %s\no: %s\n\n' \
    "$SUFFIX" "$(sed 's/^dc=//; s/,.*//' <<<"$SUFFIX")" "$SUFFIX"
  printf 'dn: %s\nobjectClass: organizationalUnit\nou: people\n\n' "$PEOPLE"
  for name in $ACCOUNTS; do
    var="HS2_${name^^}_PASSWORD"
    printf 'dn: uid=%s,%s\nobjectClass: inetOrgPerson\nuid: %s\ncn: %s\nsn: %s\nuserPassword: %s\n\n' \
      "$name" "$PEOPLE" "$name" "$name" "HiveServer2 account" "$(hash "${!var}")"
  done
} | slapadd -n 1 -F "$CONF_DIR" -l /dev/stdin
# the passwords are in the directory now: slapd and its children do not need them in their environment
for name in $ACCOUNTS; do unset "HS2_${name^^}_PASSWORD"; done

chown -R "$RUN_AS:$RUN_AS" "$CONF_DIR" "$DB_DIR" "$RUN_DIR"
echo "ldap: $SUFFIX with accounts: $ACCOUNTS; serving $URLS" >&2
exec slapd -d "${LDAP_LOG_LEVEL:-stats}" -h "$URLS" -u "$RUN_AS" -g "$RUN_AS" -F "$CONF_DIR"
