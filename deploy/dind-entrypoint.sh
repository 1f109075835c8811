#!/bin/sh
# Entrypoint of toolrunner's Docker-in-Docker image: mutual-TLS certificates (the layout docker:dind
# uses), the egress fence of the tool containers, then dockerd with "$@" appended.
#   DOCKER_TLS_CERTDIR         where the certificates live: ca/ (its key never leaves this container),
#                              server/, client/ (the worker mounts client/ read-only); required
#   DOCKER_TLS_SAN             more subjectAltName entries for the server, e.g. "IP:10.0.0.5,DNS:dind-2"
#   DIND_CLIENT_UID            owner of the client key (default 10001, the worker image's user)
#   DIND_ADDRESS, DIND_PORT    where the TLS endpoint listens (default 0.0.0.0:2376)
#   DIND_EGRESS                on (default) | off: off only where the container shares the host's network
#                              namespace, which would put the rules in the host's tables
#   TOOLRUNNER_EGRESS_ALLOW    private ranges the tools may reach after all (comma-separated CIDRs)
#   TOOLRUNNER_EGRESS_DENY     more ranges to fence off (e.g. a managed Redis on a public address)
set -eu

log() { printf '[dind-entrypoint] %s\n' "$*" >&2; }

: "${DOCKER_TLS_CERTDIR:?set DOCKER_TLS_CERTDIR: this daemon serves only mutual TLS}"
readonly CERTS=$DOCKER_TLS_CERTDIR
readonly DAYS=825         # the longest validity clients accept for a server certificate
readonly CA_DAYS=3650     # the CA's own: rotating it means new client certificates for every worker
readonly RENEW_DAYS=30    # certificates this close to expiry are issued anew at start

new_key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

# Signs $1/cert.pem for a new key $1/key.pem with the CA; $2: extensions, $3: common name.
issue() {
  new_key "$1/key.pem"
  openssl req -new -key "$1/key.pem" -subj "/CN=$3" -out "$1/csr.pem"
  printf '%s\n' "$2" >"$1/ext.cnf"
  openssl x509 -req -in "$1/csr.pem" -CA "$CERTS/ca/cert.pem" -CAkey "$CERTS/ca/key.pem" \
    -CAcreateserial -days "$DAYS" -sha256 -extfile "$1/ext.cnf" -out "$1/cert.pem" 2>/dev/null
  rm -f "$1/csr.pem" "$1/ext.cnf"
  cp "$CERTS/ca/cert.pem" "$1/ca.pem"
}

# True when $1 is missing or expires within RENEW_DAYS.
stale() {
  [ ! -s "$1" ] || ! openssl x509 -checkend $((RENEW_DAYS * 86400)) -noout -in "$1" >/dev/null 2>&1
}

make_certs() {
  umask 077
  mkdir -p "$CERTS/ca" "$CERTS/server" "$CERTS/client"
  if [ -s "$CERTS/ca/cert.pem" ] && stale "$CERTS/ca/cert.pem"; then
    log "the CA expires within $RENEW_DAYS days: issuing a new CA and certificates; restart the worker to load them"
    rm -f "$CERTS/ca/cert.pem" "$CERTS/server/cert.pem" "$CERTS/client/cert.pem"
  fi
  for leaf in server client; do
    if [ -s "$CERTS/$leaf/cert.pem" ] && stale "$CERTS/$leaf/cert.pem"; then
      log "the $leaf certificate expires within $RENEW_DAYS days: issuing it anew"
      rm -f "$CERTS/$leaf/cert.pem"
    fi
  done
  if [ ! -s "$CERTS/ca/cert.pem" ]; then
    log "generating the CA"
    new_key "$CERTS/ca/key.pem"
    openssl req -new -x509 -key "$CERTS/ca/key.pem" -subj "/CN=toolrunner dind CA" -days "$CA_DAYS" \
      -sha256 -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
      -out "$CERTS/ca/cert.pem"
  fi
  if [ ! -s "$CERTS/server/cert.pem" ]; then
    log "issuing the server certificate for $(hostname)"
    san="DNS:$(hostname),DNS:localhost,DNS:docker,IP:127.0.0.1,IP:::1${DOCKER_TLS_SAN:+,$DOCKER_TLS_SAN}"
    issue "$CERTS/server" "subjectAltName=$san
extendedKeyUsage=serverAuth
keyUsage=critical,digitalSignature,keyEncipherment" "$(hostname)"
  fi
  if [ ! -s "$CERTS/client/cert.pem" ]; then
    log "issuing the client certificate"
    issue "$CERTS/client" "extendedKeyUsage=clientAuth
keyUsage=critical,digitalSignature" "toolrunner worker"
  fi
  # The worker runs as this uid and must read its key; nobody else may.
  chown -R "${DIND_CLIENT_UID:-10001}" "$CERTS/client"
  chmod 0755 "$CERTS/client"
  chmod 0444 "$CERTS/client/ca.pem" "$CERTS/client/cert.pem"
  chmod 0400 "$CERTS/client/key.pem"
  for leaf in ca server client; do
    log "$leaf certificate $(openssl x509 -enddate -noout -in "$CERTS/$leaf/cert.pem")"
  done
}

# The rules come from config/egress.py (unit-tested, copied into this image); they go in before dockerd
# starts, and dockerd only ever adds its jump to DOCKER-USER, never flushes it.
fence_egress() {
  if [ "${DIND_EGRESS:-on}" = off ]; then
    log "egress fence OFF (DIND_EGRESS=off): tool containers reach every address this daemon reaches"
    return
  fi
  set -- --bridge "${DIND_BRIDGE:-docker0}" --allow "${TOOLRUNNER_EGRESS_ALLOW:-}" --deny "${TOOLRUNNER_EGRESS_DENY:-}"
  python3 /usr/local/lib/toolrunner/egress.py --ip-version 4 "$@" >/run/egress.v4
  python3 /usr/local/lib/toolrunner/egress.py --ip-version 6 "$@" >/run/egress.v6
  # Fail closed: without both fences dockerd does not start (a missing IPv6 fence would leave the tools
  # and this container's own ports open over IPv6).
  if ! iptables-restore </run/egress.v4; then
    log "iptables-restore failed: not starting dockerd without the IPv4 egress fence (needs NET_ADMIN)"
    exit 1
  fi
  if ! ip6tables-restore </run/egress.v6; then
    log "ip6tables-restore failed: not starting dockerd without the IPv6 egress fence (load the ip6_tables module, or run with NET_ADMIN)"
    exit 1
  fi
  log "egress fence installed (allow: ${TOOLRUNNER_EGRESS_ALLOW:-none}; deny: ${TOOLRUNNER_EGRESS_DENY:-none})"
}

make_certs
fence_egress
# docker:dind ships a `dind` wrapper (mounts, cgroup v2 nesting); a Debian docker.io image has none.
wrapper=""
command -v dind >/dev/null 2>&1 && wrapper=dind
exec $wrapper dockerd \
  --host=unix:///var/run/docker.sock \
  --host="tcp://${DIND_ADDRESS:-0.0.0.0}:${DIND_PORT:-2376}" \
  --tlsverify \
  --tlscacert="$CERTS/server/ca.pem" \
  --tlscert="$CERTS/server/cert.pem" \
  --tlskey="$CERTS/server/key.pem" \
  "$@"
