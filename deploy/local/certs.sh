#!/usr/bin/env bash
# Test certificates for the TLS listeners of the local services (kafka.sh's
# SASL_SSL and SSL listeners, postgres.sh with EXO_PG_TLS=on): a CA of its
# own, a server certificate for 127.0.0.1 and localhost, and a client
# certificate, all signed by that CA. Never use them outside tests.
#
#   certs.sh DIR    create them in DIR unless they are there already
#
# DIR/ca.crt                        the CA clients trust (sslrootcert, EXO_KAFKA_TLS_CA_FILE)
# DIR/server.crt, server.key        the server's certificate and key (PEM, PKCS#8)
# DIR/server.pem                    key then certificate, for Kafka's PEM keystore
# DIR/client.crt, client.key        a client certificate (CN=exo-client), for mutual TLS
# DIR/ca.key                        the CA's key
#
# Keys are ECDSA P-256 (fast to make), certificates valid for 10 years.
set -euo pipefail

PROG="$(basename -- "${BASH_SOURCE[0]}")"
log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() { log "error: $*"; exit 1; }

[[ $# -eq 1 ]] || { printf 'usage: %s DIR\n' "$PROG" >&2; exit 2; }
dir="$1"
files=(ca.crt ca.key server.crt server.key server.pem client.crt client.key)

complete() {
	local f
	for f in "${files[@]}"; do [[ -s "$dir/$f" ]] || return 1; done
	# Still valid in a day.
	openssl x509 -checkend 86400 -noout -in "$dir/server.crt" >/dev/null 2>&1
}
if complete; then
	exit 0
fi

if ! command -v openssl >/dev/null 2>&1; then
	if [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
		log "installing openssl (Debian package) to make the test certificates"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q openssl >&2 ||
			{ apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q openssl >&2; } ||
			die "could not install openssl"
	else
		die "openssl is needed to make the test certificates (apt-get install openssl)"
	fi
fi

mkdir -p -- "$(dirname -- "$dir")"
tmp="$(mktemp -d "${dir%/}.tmp.XXXXXX")"
trap 'rm -rf -- "$tmp"' EXIT
chmod 0755 -- "$tmp"
cd "$tmp"

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
# sign NAME SUBJECT EXTENSIONS: NAME.crt for NAME.key, signed by the CA.
sign() {
	openssl req -new -key "$1.key" -subj "$2" -out "$1.csr"
	openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 -sha256 \
		-extfile <(printf '%b' "$3") -out "$1.crt" 2>/dev/null
	rm -f -- "$1.csr"
}

key ca.key
# Named after the service (the directory's parent), so that an error about
# one CA does not read as if it were about the other.
openssl req -x509 -new -key ca.key -sha256 -days 3650 -subj "/CN=exo-alerts local test CA ($(basename -- "$(dirname -- "$(realpath -m -- "$dir")")"))" \
	-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" -out ca.crt
key server.key
sign server "/CN=localhost" "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\n"
key client.key
sign client "/CN=exo-client" "extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature\n"
cat server.key server.crt >server.pem
rm -f -- ca.srl
openssl verify -CAfile ca.crt server.crt client.crt >/dev/null || die "the new certificates do not verify"
chmod 0644 -- ./*.crt
chmod 0600 -- ./*.key server.pem

rm -rf -- "$dir"
mv -T -- "$tmp" "$dir"
trap - EXIT
log "test CA and certificates in $dir"
