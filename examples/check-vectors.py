#!/usr/bin/python3
"""Check the Teken test vectors with code written apart from tekend's.

This is what an integrator of a central system runs (and reads) to see that
the building blocks of their own implementation agree with the terminal's:

  * kids: the RFC 7638 JWK thumbprint of each test dispatcher key, and of
    every key in api/testdata/vectors/kid.json when that file is there;
  * envelopes: each golden JWS verifies with the test public key, has the
    header and payload the manifest names, and the deterministic ones
    (Ed25519 always; ES256 when the library can sign with RFC 6979 nonces)
    come out byte for byte the same when the payload is signed again;
  * receipts: envelope_sha256 (and stored_envelope_sha256) is the SHA-256
    of the envelope file's bytes, exactly as stored (no trailing newline);
  * the signed Result: its certificate is the one the job names, and every
    signature verifies: CMS and the PDF's CMS with `openssl cms -verify`
    against the test CA, the raw one with the certificate's key.

TEST KEYS ONLY: the private keys these vectors are made with are public in
the repository. Never trust them outside tests.

Needs Debian's python3 and python3-cryptography (no pip), and openssl.

usage: check-vectors.py [--vectors DIR] [--openssl PATH] [--quiet]
Exit status 0 when every check passed (skips allowed), 1 otherwise.
"""

import argparse
import base64
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile

import cryptography
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, utils

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_VECTORS = os.path.join(HERE, "..", "api", "testdata", "vectors")


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text):
    # JWS uses base64url without padding (RFC 7515 §2); refuse anything else
    # rather than let a lenient decoder accept what the terminal refuses.
    if not re.fullmatch(r"[A-Za-z0-9_-]*", text):
        raise ValueError("not base64url without padding")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sha256_hex(data):
    return hashlib.sha256(data).hexdigest()


# --- kids (RFC 7638) --------------------------------------------------------

def thumbprint_input(pub):
    """The JSON RFC 7638 §3 hashes: the required members only, in
    lexicographic order, no whitespace. A P-256 coordinate is always 32
    bytes, left-padded with zeros (RFC 7518 §6.2.1.2): one in 256 keys has
    a coordinate below 2^248, and a kid computed from the shortest integer
    bytes would be wrong for exactly those."""
    if isinstance(pub, ec.EllipticCurvePublicKey):
        if pub.curve.name != "secp256r1":
            raise ValueError("EC key on %s, want P-256" % pub.curve.name)
        n = pub.public_numbers()
        return '{"crv":"P-256","kty":"EC","x":"%s","y":"%s"}' % (
            b64url(n.x.to_bytes(32, "big")), b64url(n.y.to_bytes(32, "big")))
    if isinstance(pub, ed25519.Ed25519PublicKey):
        raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return '{"crv":"Ed25519","kty":"OKP","x":"%s"}' % b64url(raw)
    raise ValueError("key type %s: want P-256 or Ed25519" % type(pub).__name__)


def kid_of(pub):
    return b64url(hashlib.sha256(thumbprint_input(pub).encode("ascii")).digest())


def jwk_thumbprint_input(jwk):
    """The thumbprint input of a JWK given as members, for kid.json."""
    if jwk.get("kty") == "EC":
        members = ("crv", "kty", "x", "y")
    elif jwk.get("kty") == "OKP":
        members = ("crv", "kty", "x")
    else:
        raise ValueError("JWK kty %r" % jwk.get("kty"))
    return "{" + ",".join('"%s":"%s"' % (m, jwk[m]) for m in members) + "}"


def load_public(pem_bytes):
    """A public key from a PEM PUBLIC KEY or PRIVATE KEY block."""
    if b"PRIVATE KEY" in pem_bytes:
        return serialization.load_pem_private_key(pem_bytes, password=None).public_key()
    return serialization.load_pem_public_key(pem_bytes)


# --- JWS --------------------------------------------------------------------

def split_jws(env):
    parts = env.decode("ascii").split(".")
    if len(parts) != 3:
        raise ValueError("not a compact JWS: %d dots, want 2" % (len(parts) - 1))
    return parts


def verify_jws(env, pub):
    """Verify a compact JWS as the terminal does; return (header, payload)."""
    h64, p64, s64 = split_jws(env)
    header = json.loads(b64url_decode(h64))
    sig = b64url_decode(s64)
    signing_input = (h64 + "." + p64).encode("ascii")
    alg = header.get("alg")
    if alg == "ES256":
        if not isinstance(pub, ec.EllipticCurvePublicKey):
            raise ValueError("alg ES256 with a %s key" % type(pub).__name__)
        # RFC 7518 §3.4: R‖S, 32 bytes each. openssl, PHP's openssl_sign and
        # Java's SHA256withECDSA give DER instead; the terminal refuses it.
        if len(sig) != 64:
            raise ValueError("ES256 signature of %d bytes, want 64 (R||S): DER?" % len(sig))
        der = utils.encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
        pub.verify(der, signing_input, ec.ECDSA(hashes.SHA256()))
    elif alg == "EdDSA":
        if not isinstance(pub, ed25519.Ed25519PublicKey):
            raise ValueError("alg EdDSA with a %s key" % type(pub).__name__)
        pub.verify(sig, signing_input)
    else:
        raise ValueError("alg %r: want ES256 or EdDSA" % alg)
    return header, b64url_decode(p64)


def deterministic_ecdsa():
    """ECDSA with RFC 6979 nonces, or None when this cryptography is too
    old (the option came in 43; Debian 12 has 38)."""
    try:
        return ec.ECDSA(hashes.SHA256(), deterministic_signing=True)
    except TypeError:
        return None


def sign_jws(priv, alg, kid, typ, payload, der=False):
    """Sign payload bytes as they are. The header is the one tekend's Go
    library writes: members in lexicographic order, no whitespace."""
    header = json.dumps({"alg": alg, "kid": kid, "typ": typ}, separators=(",", ":"), sort_keys=True)
    signing_input = (b64url(header.encode("utf-8")) + "." + b64url(payload)).encode("ascii")
    if alg == "EdDSA":
        sig = priv.sign(signing_input)
    else:
        algorithm = deterministic_ecdsa()
        if algorithm is None:
            return None
        sig = priv.sign(signing_input, algorithm)
        if not der:
            r, s = utils.decode_dss_signature(sig)
            sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return signing_input + b"." + b64url(sig).encode("ascii")


# --- PDF --------------------------------------------------------------------

BYTE_RANGE = re.compile(rb"/ByteRange\s*\[\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*\]")


def pdf_signature(pdf):
    """The CMS of a PDF's last signature and the bytes it signs: everything
    but the /Contents hex string its /ByteRange leaves out (ISO 32000-1
    §12.8.1)."""
    found = BYTE_RANGE.findall(pdf)
    if not found:
        raise ValueError("no /ByteRange")
    a, b, c, d = (int(x) for x in found[-1])
    if a != 0 or c + d != len(pdf) or pdf[b:b + 1] != b"<" or pdf[c - 1:c] != b">":
        raise ValueError("/ByteRange %r does not frame /Contents" % ((a, b, c, d),))
    contents = bytes.fromhex(pdf[b + 1:c - 1].decode("ascii"))
    # /Contents is padded with zeros after the DER: cut at its length.
    if contents[0] != 0x30:
        raise ValueError("/Contents is not a DER SEQUENCE")
    n = contents[1]
    if n < 0x80:
        length = 2 + n
    else:
        k = n & 0x7F
        length = 2 + k + int.from_bytes(contents[2:2 + k], "big")
    return contents[:length], pdf[:b] + pdf[c:]


# --- the checks -------------------------------------------------------------

class Checks:
    def __init__(self, quiet):
        self.quiet, self.passed, self.failed, self.skipped = quiet, 0, [], 0

    def ok(self, what):
        self.passed += 1
        if not self.quiet:
            print("ok    " + what)

    def fail(self, what, why):
        self.failed.append(what)
        print("FAIL  %s: %s" % (what, why))

    def skip(self, what, why):
        self.skipped += 1
        print("skip  %s: %s" % (what, why))

    def check(self, what, cond, why=""):
        if cond:
            self.ok(what)
        else:
            self.fail(what, why or "no")
        return cond


def run(args):
    root = os.path.abspath(args.vectors)
    path = lambda name: os.path.normpath(os.path.join(root, name))
    read = lambda name: open(path(name), "rb").read()
    c = Checks(args.quiet)
    manifest = json.loads(read("manifest.json"))
    terminal = manifest["terminal"]

    # Keys and their kids.
    keys = {}
    for k in manifest["keys"]:
        pub = load_public(read(k["public_key"]))
        priv = serialization.load_pem_private_key(read(k["private_key"]), password=None)
        keys[k["name"]] = (pub, priv, k)
        c.check("kid of %s" % k["public_key"], kid_of(pub) == k["kid"] and thumbprint_input(pub) == k["jwk"],
                "computed %s from %s, manifest %s" % (kid_of(pub), thumbprint_input(pub), k["kid"]))
        c.check("%s is the private half of %s" % (k["private_key"], k["public_key"]),
                kid_of(priv.public_key()) == k["kid"])
    check_kid_json(c, root)

    # Envelopes.
    for e in manifest["envelopes"]:
        name = e["file"]
        pub, priv, k = keys[e["key"]]
        try:
            env = read(name)
        except OSError as err:
            c.fail(name, err)
            continue
        c.check("%s has no trailing newline or spaces" % name, env == env.strip())
        c.check("%s sha256" % name, sha256_hex(env) == e["sha256"], "%s, manifest %s" % (sha256_hex(env), e["sha256"]))
        try:
            h64, p64, _ = split_jws(env)
            c.check("%s header" % name, b64url_decode(h64).decode("utf-8") == e["header"],
                    "%s, manifest %s" % (b64url_decode(h64), e["header"]))
            c.check("%s payload is %s" % (name, e["payload"]), b64url_decode(p64) == read(e["payload"]))
        except ValueError as err:
            c.fail(name, err)
            continue
        try:
            header, _ = verify_jws(env, pub)
            verdict = "valid"
            c.check("%s kid names its key" % name, header.get("kid") == kid_of(pub))
            c.check("%s typ" % name, header.get("typ") == e["typ"])
        except (ValueError, InvalidSignature) as err:
            verdict = "refused (%s)" % (err or "bad signature")
        if e["expect"] == "valid":
            c.check("%s verifies with %s" % (name, k["public_key"]), verdict == "valid", verdict)
        else:
            c.check("%s is refused (%s)" % (name, e["expect"]), verdict != "valid", "it verified")
        if e["deterministic"]:
            again = sign_jws(priv, k["alg"], k["kid"], e["typ"], read(e["payload"]), der=e["expect"] != "valid")
            if again is None:
                c.skip("%s signed again" % name, "cryptography %s has no RFC 6979 ECDSA (43 or later has): "
                       "check that it verifies, as above, not that the bytes are equal" % cryptography.__version__)
            else:
                c.check("%s signed again is byte for byte the same" % name, again == env,
                        "got %s…" % again[-40:].decode("ascii"))

    # Receipts: the hash is over the envelope file's bytes.
    for r in manifest["receipts"]:
        receipt = json.loads(read(r["file"]))
        c.check("%s envelope_sha256 is sha256(%s)" % (r["file"], r["envelope"]),
                receipt.get("envelope_sha256") == sha256_hex(read(r["envelope"])),
                "%s, file hashes to %s" % (receipt.get("envelope_sha256"), sha256_hex(read(r["envelope"]))))
        if r.get("stored_envelope"):
            c.check("%s stored_envelope_sha256 is sha256(%s)" % (r["file"], r["stored_envelope"]),
                    receipt.get("stored_envelope_sha256") == sha256_hex(read(r["stored_envelope"])))
        c.check("%s terminal" % r["file"], receipt.get("terminal") == terminal)

    # The signed result.
    signer_pem = read(manifest["signer"]["certificate"])
    for res in manifest["results"]:
        check_result(c, args, res, read, path, manifest, signer_pem)

    # Every message is JSON of v1.
    for m in manifest["messages"]:
        msg = json.loads(read(m["file"]))
        c.check("%s is a v1 %s" % (m["file"], m["schema"]), isinstance(msg, dict) and msg.get("v") == 1)

    print("%d checks passed, %d skipped, %d failed" % (c.passed, c.skipped, len(c.failed)))
    return 1 if c.failed else 0


def check_kid_json(c, root):
    """kid.json lists keys with the kid they must give. Its shape is read
    liberally: a list of entries, or an object holding one; each entry has
    a kid and the key as a JWK, a PEM, or a PEM file beside kid.json."""
    p = os.path.join(root, "kid.json")
    if not os.path.exists(p):
        c.skip("kid.json", "not there")
        return
    doc = json.load(open(p, "rb"))
    entries = doc
    if isinstance(doc, dict):
        entries = next((doc[k] for k in ("vectors", "cases", "keys", "kids") if isinstance(doc.get(k), list)), None)
        if entries is None:
            entries = [dict(v, name=k) for k, v in doc.items() if isinstance(v, dict)]
    if not isinstance(entries, list) or not entries:
        c.fail("kid.json", "no list of keys found")
        return
    for i, e in enumerate(entries):
        what = "kid.json %s" % e.get("name", e.get("description", "entry %d" % i))
        try:
            want = e["kid"]
            pem = next((e[k] for k in ("public_key_pem", "pem", "spki_pem", "public_key", "private_key_pem")
                        if isinstance(e.get(k), str) and "-----BEGIN" in e[k]), None)
            file = next((e[k] for k in ("public_key_file", "file", "pem_file", "public_key")
                         if isinstance(e.get(k), str) and "-----BEGIN" not in e[k]), None)
            jwk = e.get("jwk")
            if isinstance(jwk, str):
                jwk = json.loads(jwk)
            if pem is not None or file is not None:
                data = pem.encode("ascii") if pem is not None else open(os.path.join(root, file), "rb").read()
                got_input = thumbprint_input(load_public(data))
            elif isinstance(jwk, dict):
                got_input = jwk_thumbprint_input(jwk)
            else:
                raise ValueError("no key I can read (keys %s)" % sorted(e))
            got = b64url(hashlib.sha256(got_input.encode("ascii")).digest())
            # The JWK the entry gives must be the key's, member for member.
            given = e.get("thumbprint_input") or e.get("jwk_thumbprint_input")
            if given is None and isinstance(jwk, dict):
                given = jwk_thumbprint_input(jwk)
            if given is not None:
                c.check(what + " JWK", given == got_input, "entry %s, computed %s" % (given, got_input))
            c.check(what, got == want, "computed %s from %s, want %s" % (got, got_input, want))
        except (KeyError, ValueError, OSError) as err:
            c.fail(what, err)


def check_result(c, args, res, read, path, manifest, signer_pem):
    result = json.loads(read(res["file"]))
    job = json.loads(read(res["job"]))
    der = base64.b64decode(result["signer_cert"], validate=True)
    cert = x509.load_der_x509_certificate(der)
    name = res["file"]
    c.check("%s signer_cert is the job's signer" % name,
            sha256_hex(der) == job["signer"]["cert_sha256"] == manifest["signer"]["cert_sha256"])
    c.check("%s signer_cert is %s" % (name, manifest["signer"]["certificate"]),
            cert == x509.load_pem_x509_certificate(signer_pem))
    env_header = json.loads(b64url_decode(split_jws(read(res["envelope"]))[0]))
    c.check("%s kid names the key of %s" % (name, res["envelope"]), result.get("kid") == env_header["kid"])
    docs = {d["id"]: d for d in job["documents"]}
    ca = path(manifest["signer"]["ca"])
    with tempfile.TemporaryDirectory() as tmp:
        for d in result["documents"]:
            what = "%s document %s (%s)" % (name, d["id"], d["format"])
            content = read(res["documents"][d["id"]])
            sig = base64.b64decode(d["signature"], validate=True)
            c.check(what + " sha256", sha256_hex(content) == d["sha256"] == docs[d["id"]]["sha256"])
            c.check(what + " is " + res["signatures"][d["id"]], sig == read(res["signatures"][d["id"]]))
            if d["format"] == "cms":
                openssl_verify(c, args, what, path(res["signatures"][d["id"]]), path(res["documents"][d["id"]]), ca)
            elif d["format"] == "raw":
                # The bare signature over the document's SHA-256: ECDSA-Sig-
                # Value (DER) for an EC certificate.
                try:
                    cert.public_key().verify(sig, hashlib.sha256(content).digest(), ec.ECDSA(utils.Prehashed(hashes.SHA256())))
                    c.ok(what + " verifies with the certificate's key")
                except InvalidSignature:
                    c.fail(what, "raw signature does not verify")
            elif d["format"] == "pades":
                c.check(what + " keeps the document's bytes", sig.startswith(content))
                try:
                    p7s, signed = pdf_signature(sig)
                except ValueError as err:
                    c.fail(what, err)
                    continue
                sp, cp = os.path.join(tmp, d["id"] + ".p7s"), os.path.join(tmp, d["id"] + ".ranges")
                open(sp, "wb").write(p7s)
                open(cp, "wb").write(signed)
                openssl_verify(c, args, what + " /ByteRange", sp, cp, ca)


def openssl_verify(c, args, what, sig, content, ca):
    # Without -purpose: the test certificates pass openssl's default
    # (S/MIME signing), the strictest check. For certificates in the field
    # a central system passes -purpose any (docs/PROTOCOL.md).
    cmd = [args.openssl, "cms", "-verify", "-binary", "-inform", "DER", "-in", sig, "-content", content,
           "-CAfile", ca, "-out", os.devnull]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    c.check(what + ": openssl cms -verify", p.returncode == 0, p.stdout.decode("utf-8", "replace").strip())


def main():
    ap = argparse.ArgumentParser(description="Check the Teken test vectors (TEST KEYS ONLY).")
    ap.add_argument("--vectors", default=DEFAULT_VECTORS, help="the vectors directory (default: %(default)s)")
    ap.add_argument("--openssl", default="openssl", help="the openssl binary")
    ap.add_argument("--quiet", action="store_true", help="print only failures, skips and the summary")
    return run(ap.parse_args())


if __name__ == "__main__":
    sys.exit(main())
