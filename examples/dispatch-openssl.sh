#!/bin/sh
# dispatch-openssl.sh — build a signed Teken envelope (RFC 7515 compact JWS)
# with nothing but openssl and POSIX tools, as a central system written in
# another language would. Prints the envelope on stdout; publish it with e.g.
#   mosquitto_pub -q 1 -t teken/v1/t/TERMINAL/jobs -s < envelope
#
# usage: dispatch-openssl.sh KEY.pem PAYLOAD.json [TYP]
#   KEY.pem       dispatcher private key, PKCS#8 PEM: EC P-256 (ES256) or Ed25519 (EdDSA)
#                 e.g. openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out key.pem
#   PAYLOAD.json  the message JSON (see api/schema/job.schema.json), used byte for byte
#   TYP           teken-job+jws (default), teken-cancel+jws, teken-result-ack+jws,
#                 teken-result-acks+jws (edition 4: many results at once) or
#                 teken-sync-request+jws (edition 2); a job of v 2 (paraf, anchor,
#                 jabatan, certify) is teken-job+jws too, with "v":2 in its payload
#
# The kid is the RFC 7638 JWK thumbprint of the public key, as the terminal
# derives it from its trusted-keys file.
set -eu

[ $# -ge 2 ] || { echo "usage: $0 KEY.pem PAYLOAD.json [TYP]" >&2; exit 2; }
key=$1 payload=$2 typ=${3:-teken-job+jws}

b64url() { base64 -w0 | tr '+/' '-_' | tr -d '='; }
hex2bin() { perl -e 'print pack "H*", $ARGV[0]' "$1"; }
# The public key's DER (SubjectPublicKeyInfo) as hex; the raw key sits at its end.
spki=$(openssl pkey -in "$key" -pubout -outform DER | od -An -v -tx1 | tr -d ' \n')

case $(openssl pkey -in "$key" -noout -text 2>/dev/null | head -n1) in
ED25519*)
	alg=EdDSA
	x=$(hex2bin "$(printf %s "$spki" | tail -c 64)" | b64url)
	jwk=$(printf '{"crv":"Ed25519","kty":"OKP","x":"%s"}' "$x")
	;;
*"(256 bit"*)
	alg=ES256
	# 91-byte SPKI for P-256: ... 04 || X (32 bytes) || Y (32 bytes)
	xy=$(printf %s "$spki" | tail -c 128)
	x=$(hex2bin "$(printf %s "$xy" | head -c 64)" | b64url)
	y=$(hex2bin "$(printf %s "$xy" | tail -c 64)" | b64url)
	jwk=$(printf '{"crv":"P-256","kty":"EC","x":"%s","y":"%s"}' "$x" "$y")
	;;
*)
	echo "$0: $key is neither an EC P-256 nor an Ed25519 private key" >&2
	exit 1
	;;
esac
# RFC 7638 §3: SHA-256 over the required members in lexicographic order, no spaces.
kid=$(printf %s "$jwk" | openssl dgst -sha256 -binary | b64url)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
input=$(printf '{"alg":"%s","kid":"%s","typ":"%s"}' "$alg" "$kid" "$typ" | b64url).$(b64url < "$payload")
printf %s "$input" > "$tmp/input"

if [ "$alg" = EdDSA ]; then
	sig=$(openssl pkeyutl -sign -inkey "$key" -rawin -in "$tmp/input" | b64url)
else
	# openssl writes ECDSA-Sig-Value (DER SEQUENCE of r and s); JWS wants
	# r || s, each left-padded to 32 bytes (RFC 7518 §3.4).
	openssl dgst -sha256 -sign "$key" -out "$tmp/sig.der" "$tmp/input"
	rs=""
	for int in $(openssl asn1parse -inform DER -in "$tmp/sig.der" | sed -n 's/.*INTEGER *://p'); do
		int=$(printf %s "$int" | sed 's/^0*//')
		while [ ${#int} -lt 64 ]; do int=0$int; done
		rs=$rs$int
	done
	[ ${#rs} -eq 128 ] || { echo "$0: unexpected ECDSA signature" >&2; exit 1; }
	sig=$(hex2bin "$rs" | b64url)
fi
printf '%s.%s\n' "$input" "$sig"
