#!/usr/bin/env bash
# A lab certificate authority and a server certificate signed by it, for the
# broker's TLS listener (and later the server's HTTPS) on a network without a
# public CA. Usage:
#
#   infra/tls/make-lab-ca.sh OUT_DIR NAME_OR_IP [NAME_OR_IP…]
#
# e.g. `infra/tls/make-lab-ca.sh /etc/mosquitto/orchard-tls orchard.lan 192.168.1.10`.
# Writes OUT_DIR/ca.crt, ca.key, server.crt, server.key. The first name is the
# certificate's CN; every name goes into subjectAltName (DNS or IP, as it looks).
# An existing CA in OUT_DIR is reused, so running it again with new names reissues
# only the server certificate and devices that trust ca.crt keep working.
# Keys are 0600, certificates 0644, OUT_DIR 0755. Copy ca.crt (never ca.key) to the Pis.
set -euo pipefail
umask 077

if [ "$#" -lt 2 ]; then
  echo "usage: $0 OUT_DIR NAME_OR_IP [NAME_OR_IP…]   (names go into the server certificate's subjectAltName)" >&2
  exit 2
fi
out=$1
shift
command -v openssl >/dev/null || { echo "$0: openssl is not installed (apt-get install openssl)" >&2; exit 1; }
mkdir -p "$out"
chmod 755 "$out"

sans=""
for name in "$@"; do
  if [[ "$name" =~ ^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$ || "$name" == *:* ]]; then
    sans+="${sans:+,}IP:${name}"
  elif [[ "$name" =~ ^[A-Za-z0-9*]([A-Za-z0-9.-]*[A-Za-z0-9])?$ ]]; then
    sans+="${sans:+,}DNS:${name}"
  else
    echo "$0: not a host name or IP address: $name" >&2
    exit 2
  fi
done

if [ ! -s "$out/ca.key" ] || [ ! -s "$out/ca.crt" ]; then
  openssl req -x509 -new -newkey rsa:3072 -nodes -sha256 -days 3650 \
    -subj "/CN=Orchard lab CA" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -keyout "$out/ca.key" -out "$out/ca.crt" 2>/dev/null
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat >"$tmp/ext.cnf" <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=${sans}
EXT
openssl req -new -newkey rsa:2048 -nodes -sha256 -subj "/CN=$1" -keyout "$tmp/server.key" -out "$tmp/server.csr" 2>/dev/null
openssl x509 -req -in "$tmp/server.csr" -CA "$out/ca.crt" -CAkey "$out/ca.key" -CAcreateserial -CAserial "$tmp/ca.srl" \
  -days 825 -sha256 -extfile "$tmp/ext.cnf" -out "$tmp/server.crt" 2>/dev/null
mv "$tmp/server.key" "$out/server.key"
mv "$tmp/server.crt" "$out/server.crt"

chmod 600 "$out/ca.key" "$out/server.key"
chmod 644 "$out/ca.crt" "$out/server.crt"
echo "wrote $out/ca.crt, ca.key, server.crt, server.key (subjectAltName: $sans)"
