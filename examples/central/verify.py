"""Checking a signed Result before it is trusted.

"The signatures inside a Result are verifiable on their own against the
signer certificate" (Messages from the terminal): the broker vouches for
who sent the message, not for what it says, so every signature is checked
here against the job this central system signed and the signer CA it
trusts. CMS (and the CMS inside a signed PDF) is checked by openssl, the
way an integrator would from any language; a raw signature by the
certificate's key.
"""

import base64
import hashlib
import os
import re
import subprocess
import tempfile

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

BYTE_RANGE = re.compile(rb"/ByteRange\s*\[\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*\]")


class Invalid(Exception):
    """A result whose signatures do not hold."""


def _der_length(b):
    """The length of the DER element at the start of b."""
    if len(b) < 2 or b[0] != 0x30:
        raise Invalid("not a DER SEQUENCE")
    n = b[1]
    if n < 0x80:
        return 2 + n
    k = n & 0x7F
    return 2 + k + int.from_bytes(b[2:2 + k], "big")


def pdf_signature(pdf):
    """The CMS of the PDF's last signature and the bytes it covers: all but
    the /Contents string that /ByteRange leaves out (ISO 32000-1 §12.8.1).
    The terminal appends its signature as an incremental update, so the
    last one is the terminal's."""
    found = BYTE_RANGE.findall(pdf)
    if not found:
        raise Invalid("signed PDF without /ByteRange")
    a, b, c, d = (int(x) for x in found[-1])
    if a != 0 or c + d != len(pdf) or pdf[b:b + 1] != b"<" or pdf[c - 1:c] != b">":
        raise Invalid("/ByteRange %r does not cover the whole file but /Contents" % ((a, b, c, d),))
    contents = bytes.fromhex(pdf[b + 1:c - 1].decode("ascii"))
    return contents[:_der_length(contents)], pdf[:b] + pdf[c:]


class Verifier:
    def __init__(self, ca_files, openssl="openssl"):
        self.openssl = openssl
        self.ca = None
        if ca_files:
            # openssl takes one -CAfile: the trusted signer CAs, concatenated.
            fd, self.ca = tempfile.mkstemp(prefix="teken-signer-ca-", suffix=".pem")
            with os.fdopen(fd, "wb") as out:
                for path in ca_files:
                    with open(path, "rb") as f:
                        out.write(f.read().rstrip(b"\n") + b"\n")

    def close(self):
        if self.ca:
            os.unlink(self.ca)

    def _openssl(self, args, what):
        p = subprocess.run([self.openssl] + args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if p.returncode != 0:
            raise Invalid("%s: openssl %s: %s" % (what, args[0], p.stdout.decode("utf-8", "replace").strip()))

    def cms(self, sig, content, what):
        """openssl cms -verify: the signature, the signed attributes, the
        content's digest, and the chain up to a trusted signer CA."""
        if not self.ca:
            raise Invalid("%s: no signer CA configured (--signer-ca) to verify against" % what)
        with tempfile.TemporaryDirectory() as tmp:
            sp, cp = os.path.join(tmp, "sig.p7s"), os.path.join(tmp, "content")
            with open(sp, "wb") as f:
                f.write(sig)
            with open(cp, "wb") as f:
                f.write(content)
            # -purpose any: openssl's default (S/MIME signing) refuses a
            # certificate whose extended key usage names document signing
            # but not e-mail, as signing certificates in the field do; the
            # key usage and the chain are still checked.
            self._openssl(["cms", "-verify", "-binary", "-inform", "DER", "-in", sp, "-content", cp,
                           "-CAfile", self.ca, "-purpose", "any", "-out", os.devnull], what)

    def chain(self, cert, what):
        """openssl verify: the signer certificate chains to a trusted CA
        (any purpose, as above)."""
        if not self.ca:
            raise Invalid("%s: no signer CA configured (--signer-ca) to verify against" % what)
        with tempfile.TemporaryDirectory() as tmp:
            p = os.path.join(tmp, "signer.pem")
            with open(p, "wb") as f:
                f.write(cert.public_bytes(serialization.Encoding.PEM))
            self._openssl(["verify", "-CAfile", self.ca, "-purpose", "any", p], what)

    def result(self, job, result):
        """Raise Invalid unless every document of the job is signed by the
        job's signer and every signature verifies."""
        cert_der = base64.b64decode(result.get("signer_cert", ""), validate=True)
        # The terminal offers a job only to the token whose certificate
        # hashes to signer.cert_sha256 (Job): any other certificate here
        # means the result is not the one asked for.
        if hashlib.sha256(cert_der).hexdigest() != job["signer"]["cert_sha256"]:
            raise Invalid("signer_cert is not the job's signer")
        cert = x509.load_der_x509_certificate(cert_der)
        signed = {d["id"]: d for d in result.get("documents", [])}
        if len(signed) != len(result.get("documents", [])) or sorted(signed) != sorted(d["id"] for d in job["documents"]):
            raise Invalid("documents %s signed, job has %s" % (sorted(signed), sorted(d["id"] for d in job["documents"])))
        for doc in job["documents"]:
            s = signed[doc["id"]]
            what = "document %s (%s)" % (doc["id"], s.get("format"))
            content = base64.b64decode(doc["content"], validate=True)
            if s.get("sha256") != doc["sha256"] or s.get("format") != doc.get("format", "cms"):
                raise Invalid("%s: sha256 or format is not the job's" % what)
            sig = base64.b64decode(s["signature"], validate=True)
            if s["format"] == "cms":
                self.cms(sig, content, what)
            elif s["format"] == "raw":
                # The bare signature over the document's bytes, with the
                # hash the key calls for (Job, raw): DER ECDSA-Sig-Value or
                # PKCS#1 v1.5. Nothing in it names the certificate, which is
                # checked on its own.
                pub = cert.public_key()
                try:
                    if isinstance(pub, ec.EllipticCurvePublicKey):
                        h = {"secp384r1": hashes.SHA384(), "secp521r1": hashes.SHA512()}.get(pub.curve.name, hashes.SHA256())
                        pub.verify(sig, content, ec.ECDSA(h))
                    elif isinstance(pub, rsa.RSAPublicKey):
                        pub.verify(sig, content, padding.PKCS1v15(), hashes.SHA256())
                    else:
                        raise Invalid("%s: key type %s" % (what, type(pub).__name__))
                except InvalidSignature:
                    raise Invalid("%s: raw signature does not verify" % what)
                self.chain(cert, what)
            elif s["format"] == "pades":
                # The terminal signs the very PDF it showed: the signed file
                # is the sent one with an incremental update after it.
                if not sig.startswith(content):
                    raise Invalid("%s: the signed PDF does not begin with the PDF sent" % what)
                p7s, covered = pdf_signature(sig)
                self.cms(p7s, covered, what + " /ByteRange")
            else:
                raise Invalid("%s: unknown format" % what)
