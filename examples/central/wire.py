"""The Teken wire contract, v1 edition 2, as a central system speaks it.

Written from docs/PROTOCOL.md, not from tekend's Go code: dispatcher keys
and kids, JWS compact envelopes (ES256 and EdDSA), times, message reading
with the contract's strictness. Needs only Debian's python3-cryptography.
Section names in comments are those of docs/PROTOCOL.md.
"""

import base64
import datetime
import hashlib
import json
import re
import uuid

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, utils

VERSION = 1

# "Size limits are checked before parsing" (Common rules). The Go library
# allows 48 MiB for a Result: a pades result carries signed PDFs of up to
# 32 MiB each; PROTOCOL.md says 8 MiB.
MAX_MESSAGE_BYTES = 1 << 20
MAX_RESULT_BYTES = 48 << 20

# The JWS typ of each signed message (Signed envelopes). The terminal
# accepts only the one it expects, so an ack cannot be replayed as a job.
TYP_JOB = "teken-job+jws"
TYP_CANCEL = "teken-cancel+jws"
TYP_RESULT_ACK = "teken-result-ack+jws"
TYP_SYNC_REQUEST = "teken-sync-request+jws"

ULID = re.compile(r"^[0-7][0-9A-HJKMNP-TV-Z]{25}$")
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
TERMINAL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")


class Refused(Exception):
    """A message from a terminal that this central system does not read."""


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sha256_hex(data):
    return hashlib.sha256(data).hexdigest()


def valid_id(value):
    """Job and request ids: an upper-case ULID or a lower-case UUID, only
    the canonical case, so that duplicates are a plain string comparison
    (Common rules)."""
    return isinstance(value, str) and bool(ULID.match(value) or UUID.match(value))


def new_id():
    # str(uuid4()) is lower case: the canonical form of a UUID here.
    return str(uuid.uuid4())


# --- times ------------------------------------------------------------------

RFC3339 = re.compile(r"^(\d{4})-(\d\d)-(\d\d)[Tt](\d\d):(\d\d):(\d\d)(\.\d+)?([Zz]|[+-]\d\d:\d\d)$")


def format_time(t):
    """Times are written UTC with exactly three fraction digits and Z
    (2026-01-05T01:00:00.000Z): what JavaScript, Java and PHP all read.
    The fraction is cut, not rounded, so a time never moves forward."""
    t = t.astimezone(datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (t.microsecond // 1000)


def parse_time(text):
    """Readers accept any RFC 3339 time, lower-case t and z included
    (RFC 3339 §5.6)."""
    m = RFC3339.match(text) if isinstance(text, str) else None
    if not m:
        raise Refused("time %r is not RFC 3339" % (text,))
    y, mo, d, h, mi, s = (int(x) for x in m.groups()[:6])
    frac = m.group(7) or ".0"
    micro = int((frac[1:] + "000000")[:6])
    zone = m.group(8).upper()
    tz = datetime.timezone.utc
    if zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        tz = datetime.timezone(sign * datetime.timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6])))
    return datetime.datetime(y, mo, d, h, mi, s, micro, tz).astimezone(datetime.timezone.utc)


def now():
    return datetime.datetime.now(datetime.timezone.utc)


# --- keys and kids ------------------------------------------------------------

class DispatcherKey:
    """A dispatcher private key: PKCS#8 PEM, EC P-256 (ES256) or Ed25519
    (EdDSA), as `openssl genpkey` writes it (Keys, under Signed envelopes)."""

    def __init__(self, pem):
        self.key = serialization.load_pem_private_key(pem, password=None)
        pub = self.key.public_key()
        if isinstance(self.key, ec.EllipticCurvePrivateKey) and self.key.curve.name == "secp256r1":
            self.alg = "ES256"
        elif isinstance(self.key, ed25519.Ed25519PrivateKey):
            self.alg = "EdDSA"
        else:
            raise ValueError("dispatcher key: want EC P-256 or Ed25519, got %s" % type(self.key).__name__)
        self.kid = kid_of(pub)

    @classmethod
    def load(cls, path):
        with open(path, "rb") as f:
            return cls(f.read())

    def sign(self, typ, payload):
        """The compact JWS (RFC 7515 §7.1) of payload bytes, exactly as
        given: the terminal hashes nothing again, it verifies these bytes."""
        header = json.dumps({"alg": self.alg, "kid": self.kid, "typ": typ}, separators=(",", ":"))
        signing_input = (b64url(header.encode("ascii")) + "." + b64url(payload)).encode("ascii")
        if self.alg == "EdDSA":
            sig = self.key.sign(signing_input)
        else:
            # cryptography returns ECDSA-Sig-Value (DER), as openssl, PHP and
            # Java do; JWS wants R‖S with each half left-padded to 32 bytes
            # (RFC 7518 §3.4), and the terminal refuses DER by name.
            r, s = utils.decode_dss_signature(self.key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
            sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return signing_input + b"." + b64url(sig).encode("ascii")


def kid_of(pub):
    """The RFC 7638 JWK thumbprint (SHA-256, base64url without padding): the
    required members in lexicographic order, no spaces. P-256 coordinates
    are always 32 bytes, left-padded: taking the shortest integer bytes
    gives a wrong kid for one key in 128."""
    if isinstance(pub, ec.EllipticCurvePublicKey):
        n = pub.public_numbers()
        jwk = '{"crv":"P-256","kty":"EC","x":"%s","y":"%s"}' % (b64url(n.x.to_bytes(32, "big")), b64url(n.y.to_bytes(32, "big")))
    else:
        raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        jwk = '{"crv":"Ed25519","kty":"OKP","x":"%s"}' % b64url(raw)
    return b64url(hashlib.sha256(jwk.encode("ascii")).digest())


# --- messages to the terminal ---------------------------------------------------

def encode(message):
    """Compact UTF-8 JSON. The signed payload is these bytes; nothing
    re-serialises them afterwards."""
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def document(doc_id, name, media_type, content, fmt, visible_url=None):
    """One document of a Job, with its bytes: the terminal hashes them itself
    and refuses the job when they do not match sha256 (What you see is what
    you sign, under Job)."""
    d = {"id": doc_id, "name": name, "media_type": media_type, "sha256": sha256_hex(content),
         "size": len(content), "content": base64.b64encode(content).decode("ascii"), "format": fmt}
    if visible_url:
        d["visible"] = {"verify_url": visible_url}
    return d


def job(job_id, terminal, signer, title, number, sender, documents, lifetime, fields=()):
    issued = now()
    j = {"v": VERSION, "job_id": job_id, "terminal": terminal,
         "issued_at": format_time(issued), "expires_at": format_time(issued + lifetime),
         "signer": signer, "title": title, "number": number, "sender": sender, "documents": documents}
    if fields:
        j["fields"] = [{"label": k, "value": v} for k, v in fields]
    return j


def control(terminal, lifetime, **members):
    """A Cancel, ResultAck or SyncRequest payload: short-lived, so that a
    captured one is soon worthless."""
    issued = now()
    m = {"v": VERSION, "terminal": terminal}
    m.update(members)
    m["issued_at"], m["expires_at"] = format_time(issued), format_time(issued + lifetime)
    return m


# --- messages from the terminal -------------------------------------------------

def _strict_object(pairs):
    """Keys are lower case and unique; an object breaking either is refused
    (Common rules): parsers disagree on which duplicate wins."""
    seen = {}
    for k, v in pairs:
        if k != k.lower():
            raise Refused("key %r is not lower case" % k)
        if k in seen:
            raise Refused("duplicate key %r" % k)
        seen[k] = v
    return seen


def decode(raw, limit, terminal):
    """Read a Receipt, Result, Status or Sync. These are tolerant: a newer
    terminal may add fields, which are ignored (Versioning). The version is
    checked before anything else, so a v2 message is named as such; the
    terminal id comes from the topic and must equal the message's own
    (Topics)."""
    if len(raw) > limit:
        raise Refused("%d bytes, limit %d" % (len(raw), limit))
    try:
        msg = json.loads(raw.decode("utf-8"), object_pairs_hook=_strict_object)
    except (UnicodeDecodeError, ValueError) as err:
        raise Refused("not JSON: %s" % err)
    if not isinstance(msg, dict):
        raise Refused("not a JSON object")
    if msg.get("v") != VERSION:
        raise Refused("unsupported_version: v is %r" % (msg.get("v"),))
    if msg.get("terminal") != terminal:
        raise Refused("message names terminal %r, topic %r" % (msg.get("terminal"), terminal))
    return msg
