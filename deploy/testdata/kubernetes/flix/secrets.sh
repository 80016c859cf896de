#!/bin/sh
# Creates the Secrets that the objects beside this script reference, each
# one only if it does not exist yet: run it again after adding a service.
# Written by shoal export kubernetes; needs kubectl (pointing at the
# cluster) and openssl. Run it from the folder of shoal.yaml:
#
#   sh DIR/secrets.sh
#
# Keys are generated here and sent to the cluster; nothing secret stays on
# disk but a temporary folder, removed at the end.
set -eu
k() { kubectl --namespace flix "$@"; }
have() { k get secret "$1" >/dev/null 2>&1; }
field() { k get secret "$1" -o "jsonpath={.data.$2}" | openssl base64 -d -A; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for f in examples/flix/keys/jwt-dev.key examples/flix/keys/jwt-dev.pub; do
  [ -f "$f" ] || { echo "secrets.sh: $f not found: run this script from the folder of shoal.yaml" >&2; exit 1; }
done

# flix-gossip (SHOAL_GOSSIP_KEY): the gossip keyring, one AES-256 key. Rotation: docs/DEPLOY.md.
have flix-gossip || k create secret generic flix-gossip --from-literal=key="$(openssl rand -base64 32)"

# flix-files: the files shoal.yaml names, mounted at their paths under /etc/shoal.
have flix-files || k create secret generic flix-files \
  --from-file=examples_flix_keys_jwt-dev.key=examples/flix/keys/jwt-dev.key \
  --from-file=examples_flix_keys_jwt-dev.pub=examples/flix/keys/jwt-dev.pub

# flix-database (SHOAL_DATABASE_URL) of catalog, ratings, profiles, search, history, recommendations, playback: the PostgreSQL database of the services with a store,
# each in its own schema.
have flix-postgres || k create secret generic flix-postgres --from-literal=password="$(openssl rand -hex 24)"
if ! have flix-database; then
  password=$(field flix-postgres password)
  k create secret generic flix-database --from-literal=url="postgres://shoal:${password}@flix-postgres:5432/flix?sslmode=disable"
fi

# flix-identity-ca (SHOAL_IDENTITY_BUNDLE): the CA bundle every service verifies the others with;
# flix-identity-SERVICE (SHOAL_IDENTITY_CERT, SHOAL_IDENTITY_KEY): the service's certificate,
# spiffe://flix/SERVICE, valid 90 days. The CA's key stays in flix-identity-ca-key, which
# no pod mounts, to issue the certificates of services added later.
if ! have flix-identity-ca-key; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 365 \
    -subj '/O=flix/CN=flix CA' -addext basicConstraints=critical,CA:TRUE \
    -addext keyUsage=critical,keyCertSign,cRLSign -addext subjectAltName=URI:spiffe://flix \
    -keyout "$tmp/ca.key" -out "$tmp/ca.pem" 2>/dev/null
  k create secret generic flix-identity-ca-key --from-file=key="$tmp/ca.key" --from-file=cert="$tmp/ca.pem"
fi
if ! have flix-identity-ca; then
  field flix-identity-ca-key cert > "$tmp/bundle.pem"
  k create secret generic flix-identity-ca --from-file=bundle.pem="$tmp/bundle.pem"
fi
issue() {
  have "flix-identity-$1" && return 0
  [ -f "$tmp/ca.key" ] || { field flix-identity-ca-key key > "$tmp/ca.key"; field flix-identity-ca-key cert > "$tmp/ca.pem"; }
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/O=flix/CN=$1" \
    -keyout "$tmp/$1.key" -out "$tmp/$1.csr" 2>/dev/null
  printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=DNS:%s,URI:spiffe://flix/%s\n' "$1" "$1" > "$tmp/$1.ext"
  openssl x509 -req -in "$tmp/$1.csr" -CA "$tmp/ca.pem" -CAkey "$tmp/ca.key" -set_serial "0x$(openssl rand -hex 16)" \
    -days 90 -extfile "$tmp/$1.ext" -out "$tmp/$1.pem" 2>/dev/null
  k create secret tls "flix-identity-$1" --cert="$tmp/$1.pem" --key="$tmp/$1.key"
}
issue gateway
issue catalog
issue ratings
issue profiles
issue search
issue history
issue recommendations
issue playback
issue api
issue trailers
