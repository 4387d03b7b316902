#!/usr/bin/python3
"""central.py — a reference central system for Teken signing terminals.

Written from docs/PROTOCOL.md (v1, edition 2) with nothing but Debian's
python3, python3-paho-mqtt, python3-cryptography and openssl, as a letter
system in any language would be. Section names in comments are those of
docs/PROTOCOL.md; they say *why* each step is there.

  run           the long-lived side: receipts, results, status and Sync
  dispatch      sign a job (ES256 or EdDSA, by the key given) and publish it
  cancel        sign and publish a Cancel
  request-sync  sign and publish a SyncRequest; `run` takes the answer
  recover       after losing the broker session: a new client id, a
                SyncRequest, and every result the terminal still holds
  ledger        print the ledger as JSON

Every command that does something prints one JSON object per line on
stdout (events, for a program to follow); diagnostics go to stderr.
"""

import argparse
import datetime
import json
import logging
import mimetypes
import os
import re
import signal
import sys
import time

from cryptography import x509
from cryptography.hazmat.primitives import serialization

# The modules beside this file, without leaving __pycache__ in the tree.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ledger as ledgermod  # noqa: E402
from link import Link, emit, parse_topic, topic  # noqa: E402
import verify  # noqa: E402
import wire  # noqa: E402

log = logging.getLogger("central")

# How long our signed control messages stay valid. A ResultAck for a day,
# like the Go library; a SyncRequest for the recommended 15 minutes at most
# (SyncRequest): long enough for a terminal briefly offline, short enough
# that a captured request is soon worthless.
ACK_TTL = datetime.timedelta(days=1)
CANCEL_TTL = datetime.timedelta(days=1)
SYNC_REQUEST_TTL = datetime.timedelta(minutes=15)

OUTCOMES = {"signed", "rejected", "expired", "cancelled", "failed"}


def parse_duration(text):
    m = re.fullmatch(r"(\d+)([smhd])", text)
    if not m:
        raise argparse.ArgumentTypeError("%r: want a number and s, m, h or d" % text)
    return datetime.timedelta(seconds=int(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)])


# --- the central side ------------------------------------------------------------

class Central:
    """The handlers of everything a terminal sends."""

    def __init__(self, args, ledger, key, ack=True):
        self.args, self.ledger, self.key, self.ack = args, ledger, key, ack
        self.verifier = verify.Verifier(args.signer_ca, args.openssl)
        self.link = None  # set by the command, before it connects
        self.requests = {}  # request_id → terminal, for SyncRequests sent
        self.request_envelopes = {}  # envelope_sha256 → request_id
        self.answers = {}  # request_id → the Sync that answered it
        self.refused = {}  # request_id → the receipt that refused it
        self.acked = set()  # (terminal, job_id) whose ResultAck the broker took

    def on_message(self, msg):
        terminal, kind = parse_topic(self.args.root, msg.topic)
        if terminal is None:
            log.warning("message on unexpected topic %s dropped", msg.topic)
            return
        try:
            getattr(self, "on_" + kind)(terminal, msg.payload)
        except wire.Refused as err:
            # A message this side cannot read never gets better by coming
            # again: dropped (and acknowledged), and said.
            log.warning("%s from %s dropped: %s", kind, terminal, err)
            emit("dropped", terminal=terminal, kind=kind, error=str(err))
        # Anything else — the ledger failing above all — propagates: paho
        # then sends no PUBACK, and the broker delivers the message again.

    # Receipt.
    def on_receipts(self, terminal, payload):
        r = wire.decode(payload, wire.MAX_MESSAGE_BYTES, terminal)
        what = r.get("for") or "job"
        emit("receipt", terminal=terminal, job_id=r.get("job_id"), status=r.get("status"), reason=r.get("reason"),
             request_id=r.get("request_id"), resent=bool(r.get("resent")), envelope_sha256=r.get("envelope_sha256"),
             **{"for": what})
        if what != "job":
            # Receipts of control messages (edition 2) are advice: a Cancel
            # that came too late leaves the result standing, an ack the
            # terminal did not need changes nothing. Only job receipts move
            # a job (A central system must only treat receipts with for
            # absent/job as job receipts).
            if r.get("status") == "refused":
                log.warning("%s refused by %s: %s %s", what, terminal, r.get("reason"), r.get("detail", ""))
                # Matched by the envelope's hash, which every receipt
                # carries: request_id may be absent from a refusal.
                rid = self.request_envelopes.get(r.get("envelope_sha256"))
                if what == "sync_request" and rid:
                    self.refused[rid] = r
            return
        # A refusal's job_id was read from an unverified payload: a hint for
        # matching only (Receipt). The envelope's hash is what names it.
        job = self.ledger.job_by_envelope(terminal, r.get("envelope_sha256"))
        if job is None:
            log.info("receipt for an envelope this ledger did not send (job id hint %s)", r.get("job_id"))
            return
        if r.get("status") in ("stored", "duplicate"):
            self.ledger.set_state(terminal, job["job_id"], "held", only_from=("pending",))
        elif r.get("status") == "refused":
            reason = r.get("reason") or "internal"
            if reason == "conflict":
                # The terminal keeps the first envelope it had under this id
                # (stored_envelope_sha256): a job id names one envelope, so
                # a changed letter needs a new job id.
                log.error("job %s: the terminal holds another envelope under this id (%s)", job["job_id"], r.get("stored_envelope_sha256"))
            # Publishing the same envelope again cannot help: the terminal
            # refuses it for the same reason. It is not re-sent on a Sync.
            self.ledger.set_state(terminal, job["job_id"], "refused", reason, only_from=("pending", "held"))

    # Result.
    def on_results(self, terminal, payload):
        r = wire.decode(payload, wire.MAX_RESULT_BYTES, terminal)
        job_id = r.get("job_id")
        if not wire.valid_id(job_id) or r.get("outcome") not in OUTCOMES:
            raise wire.Refused("result without a valid job_id or outcome")
        # The terminal re-sends a result until a ResultAck arrives: the
        # central system drops duplicates by job_id, and acks every copy.
        if self.ledger.has_result(terminal, job_id):
            self.ledger.store_result(terminal, job_id, r["outcome"], None, None, None, wire.format_time(wire.now()))
            emit("result", terminal=terminal, job_id=job_id, outcome=r["outcome"], new=False)
            self.send_ack(terminal, job_id)
            return
        verified, error = None, None
        held = self.ledger.job(terminal, job_id)
        if held is None:
            # Not ours, or from before a restored backup: kept for a person
            # to look at, and acknowledged, or the terminal would re-send it
            # for ever.
            error = "no job %s in the ledger" % job_id
            log.warning("result for unknown job %s from %s", job_id, terminal)
        elif r.get("kid") not in (None, held["kid"]):
            # kid names the dispatcher key that signed the job (Result): a
            # job this side signed with one key and the terminal verified
            # with another is not the job in the ledger.
            verified, error = 0, "result kid %s, the job was signed with %s" % (r.get("kid"), held["kid"])
            log.error("result %s: %s", job_id, error)
        elif r["outcome"] == "signed":
            job = json.loads(wire.b64url_decode(held["envelope"].split(b".")[1].decode("ascii")))
            try:
                self.verifier.result(job, r)
                verified = 1
            except (verify.Invalid, ValueError, KeyError) as err:
                # Stored and acknowledged all the same: the terminal cannot
                # make a better result, and keeping it re-sent helps nobody.
                verified, error = 0, str(err)
                log.error("result %s does not verify: %s", job_id, err)
        new = self.ledger.store_result(terminal, job_id, r["outcome"], payload.decode("utf-8"), verified, error,
                                       wire.format_time(wire.now()))
        # A reason code this side does not know is kept as it came and
        # treated like internal (Reason codes): newer terminals add codes.
        emit("result", terminal=terminal, job_id=job_id, outcome=r["outcome"], new=new, reason=r.get("reason"), kid=r.get("kid"),
             verified=None if verified is None else bool(verified), error=error,
             formats=[d.get("format") for d in r.get("documents", [])])
        # Stored and committed above: only now is the ack sent (ResultAck:
        # a forged or early ack would make the terminal drop a result that
        # never arrived).
        self.send_ack(terminal, job_id)

    def send_ack(self, terminal, job_id):
        if not self.ack:
            return
        payload = wire.encode(wire.control(terminal, ACK_TTL, job_id=job_id))
        env = self.key.sign(wire.TYP_RESULT_ACK, payload)

        def done():
            self.acked.add((terminal, job_id))
            emit("result_ack_sent", terminal=terminal, job_id=job_id)
        self.link.publish(topic(self.args.root, terminal, "control"), env, done)

    # Status (retained).
    def on_status(self, terminal, payload):
        if not payload:
            return  # a cleared retained status
        s = wire.decode(payload, wire.MAX_MESSAGE_BYTES, terminal)
        self.ledger.status(terminal, s.get("state"), s.get("edition"), s.get("version"), s.get("since"))
        emit("status", terminal=terminal, state=s.get("state"), edition=s.get("edition"),
             jobs_waiting=s.get("jobs_waiting"), results_undelivered=s.get("results_undelivered"))

    # Sync.
    def on_sync(self, terminal, payload):
        s = wire.decode(payload, wire.MAX_MESSAGE_BYTES, terminal)
        at = wire.parse_time(s.get("at"))
        waiting, undelivered = s.get("jobs_waiting") or [], s.get("results_undelivered") or []
        if not all(wire.valid_id(i) for i in waiting + undelivered):
            raise wire.Refused("sync lists an invalid job id")
        trigger, request_id = s.get("trigger"), s.get("request_id")
        if request_id in self.requests:
            self.answers[request_id] = s
        # A redelivered Sync, or one overtaken by a newer one, is not
        # answered twice: the newest says what the terminal holds.
        last = self.ledger.last_sync(terminal)
        if last and at <= wire.parse_time(last):
            emit("sync", terminal=terminal, trigger=trigger, request_id=request_id, answered=False)
            return
        # Ack every listed result already stored: its ResultAck was lost.
        acked = []
        for job_id in undelivered:
            if self.ledger.has_result(terminal, job_id):
                self.send_ack(terminal, job_id)
                acked.append(job_id)
        resent = self.resend(terminal, set(waiting) | set(undelivered), s.get("session_present") is False)
        self.ledger.synced(terminal, wire.format_time(at))
        emit("sync", terminal=terminal, trigger=trigger, request_id=request_id, session_present=s.get("session_present"),
             jobs_waiting=waiting, results_undelivered=undelivered, acked=acked if self.ack else [], resent=resent, answered=True)

    def resend(self, terminal, holds, session_lost):
        """Publish again every job dispatched to the terminal that has no
        result, is not refused or cancelled, and is not in the Sync's lists:
        the broker lost it (Sync). A job published in the last minute is
        left alone — it may still be on its way — unless the terminal's
        broker kept no session (session_present false), which lost every
        job queued for it, however recent."""
        grace = datetime.timedelta(seconds=self.args.resend_grace)
        now = wire.now()
        resent = []
        for job_id, envelope, expires_at, published in self.ledger.open_jobs(terminal):
            if job_id in holds:
                continue
            if wire.parse_time(expires_at) <= now:
                # Expired and not held: the terminal would refuse it, so it
                # is not re-sent (Terminal offline for days).
                self.ledger.set_state(terminal, job_id, "expired", "not held by the terminal when it expired")
                continue
            if not session_lost and published and now - wire.parse_time(published) < grace:
                continue
            # The same envelope, byte for byte: the terminal answers a job it
            # holds as duplicate, and one it never had as stored.
            self.link.publish(topic(self.args.root, terminal, "jobs"), envelope)
            self.ledger.published(terminal, job_id, wire.format_time(now))
            resent.append(job_id)
            emit("job_resent", terminal=terminal, job_id=job_id)
        return resent

    def request_sync(self, terminal):
        request_id = wire.new_id()
        payload = wire.encode(wire.control(terminal, SYNC_REQUEST_TTL, request_id=request_id))
        env = self.key.sign(wire.TYP_SYNC_REQUEST, payload)
        self.requests[request_id] = terminal
        self.request_envelopes[wire.sha256_hex(env)] = request_id
        self.link.publish(topic(self.args.root, terminal, "control"), env,
                          lambda: emit("sync_requested", terminal=terminal, request_id=request_id))
        return request_id

    def known_terminals(self):
        return [r[0] for r in self.ledger.db.execute("SELECT DISTINCT terminal FROM jobs UNION SELECT terminal FROM terminals")]


# --- commands -------------------------------------------------------------------

def need_key(args):
    if not args.key:
        raise SystemExit("--key: a dispatcher private key is needed to sign")
    return wire.DispatcherKey.load(args.key)


def cmd_run(args):
    """The long-lived side, on a persistent session with a fixed client id:
    the broker keeps our subscriptions and queues what terminals publish
    while we are away (Terminal offline for days)."""
    ledger = ledgermod.Ledger(args.ledger)
    central = Central(args, ledger, need_key(args), ack=not args.no_ack)
    stop = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.append(True))

    def ready():
        # A broker that kept no session for us lost what it queued: ask
        # each terminal we know for its backlog (SyncRequest).
        if not central.link.session_present:
            for terminal in central.known_terminals():
                central.request_sync(terminal)

    central.link = link = Link(args, args.client_id, clean=False, on_message=central.on_message, on_ready=ready)
    link.connect()
    link.pump(lambda: bool(stop), reconnect=True)
    link.close()
    central.verifier.close()
    ledger.close()
    emit("stopped")
    return 0


def one_shot(args, send):
    """A short connection of its own for one publish: the fixed client id
    belongs to `run`, and a second client with it would push `run` off the
    broker (MQTT 3.1.1 §3.1.4). send(link, done) publishes; done() is
    called when the broker has acknowledged everything."""
    done = []
    link = Link(args, "%s-%s-%s" % (args.client_id, args.command, wire.new_id()[:8]), clean=True)
    link.on_ready = lambda: send(link, lambda: done.append(True))
    link.connect()
    if not link.pump(lambda: bool(done), deadline=time.monotonic() + args.timeout):
        raise SystemExit("the broker did not acknowledge the publish within %ds" % args.timeout)
    link.close()


def document_id(path, taken):
    base = re.sub(r"[^A-Za-z0-9._-]", "-", os.path.splitext(os.path.basename(path))[0]).lstrip("._-")[:56] or "doc"
    doc_id, n = base, 1
    while doc_id in taken:
        n += 1
        doc_id = "%s-%d" % (base, n)
    taken.add(doc_id)
    return doc_id


def cmd_dispatch(args):
    key = need_key(args)
    ledger = ledgermod.Ledger(args.ledger)
    if args.signer_cert:
        cert = x509.load_pem_x509_certificate(open(args.signer_cert, "rb").read())
        der = cert.public_bytes(serialization.Encoding.DER)
        attr = lambda oid: next((a.value for a in cert.subject.get_attributes_for_oid(oid)), None)
        signer = {"cert_sha256": wire.sha256_hex(der)}
        name, nip = args.signer_name or attr(x509.NameOID.COMMON_NAME), args.signer_nip or attr(x509.NameOID.SERIAL_NUMBER)
    elif args.signer_cert_sha256:
        signer, name, nip = {"cert_sha256": args.signer_cert_sha256}, args.signer_name, args.signer_nip
    else:
        raise SystemExit("--signer-cert or --signer-cert-sha256: the job must name its signer")
    if nip:
        signer["nip"] = nip
    if name:
        signer["name"] = name
    docs, taken = [], set()
    for spec in args.document:
        fmt, _, path = spec.partition(":")
        if fmt not in ("cms", "raw", "pades") or not path:
            raise SystemExit("--document %s: want FORMAT:PATH, FORMAT cms, raw or pades" % spec)
        media = mimetypes.guess_type(path)[0] or "application/octet-stream"
        if fmt == "pades" and media != "application/pdf":
            raise SystemExit("--document %s: pades needs a PDF" % spec)
        docs.append(wire.document(document_id(path, taken), os.path.basename(path), media, open(path, "rb").read(), fmt,
                                  args.visible_url if fmt == "pades" else None))
    job_id = args.job_id or wire.new_id()
    job = wire.job(job_id, args.terminal, signer, args.title, args.number, args.sender, docs, args.expires_in)
    env = key.sign(wire.TYP_JOB, wire.encode(job))
    # Persist, then publish: a job the ledger holds can always be sent again
    # on the terminal's next Sync, even if this publish is lost.
    ledger.add_job(args.terminal, job_id, env, wire.sha256_hex(env), key.kid, job["expires_at"], wire.format_time(wire.now()))
    if not args.no_publish:
        one_shot(args, lambda link, done: link.publish(topic(args.root, args.terminal, "jobs"), env, done))
        ledger.published(args.terminal, job_id, wire.format_time(wire.now()))
    emit("dispatched", terminal=args.terminal, job_id=job_id, kid=key.kid, alg=key.alg, envelope_sha256=wire.sha256_hex(env),
         formats=[d["format"] for d in docs], published=not args.no_publish)
    ledger.close()
    return 0


def cmd_cancel(args):
    key = need_key(args)
    ledger = ledgermod.Ledger(args.ledger)
    payload = wire.encode(wire.control(args.terminal, CANCEL_TTL, job_id=args.job_id, reason=args.reason))
    one_shot(args, lambda link, done: link.publish(topic(args.root, args.terminal, "control"), key.sign(wire.TYP_CANCEL, payload), done))
    # A cancelled job is not re-sent on a Sync; the terminal answers with a
    # cancelled Result, or a receipt too_late when it was signed first.
    ledger.set_state(args.terminal, args.job_id, "cancelled", only_from=("pending", "held"))
    emit("cancel_sent", terminal=args.terminal, job_id=args.job_id)
    return 0


def cmd_request_sync(args):
    key = need_key(args)
    sent = []

    def send(link, done):
        for terminal in args.terminal:
            request_id = wire.new_id()
            payload = wire.encode(wire.control(terminal, SYNC_REQUEST_TTL, request_id=request_id))

            def puback(terminal=terminal, request_id=request_id):
                emit("sync_requested", terminal=terminal, request_id=request_id)
                sent.append(request_id)
                if len(sent) == len(args.terminal):
                    done()
            link.publish(topic(args.root, terminal, "control"), key.sign(wire.TYP_SYNC_REQUEST, payload), puback)
    one_shot(args, send)
    return 0


def cmd_recover(args):
    """After this side lost its broker session (a new broker, a clean
    session, a lost client id) or restored its ledger from a backup: connect
    with a new client id, subscribe, and only then ask each terminal for a
    Sync (SyncRequest). The terminal answers with a Sync naming the request
    and publishes again every result without a ResultAck and the receipt of
    every job it holds; each result is stored (or recognised) and acked."""
    ledger = ledgermod.Ledger(args.ledger)
    central = Central(args, ledger, need_key(args), ack=True)
    asked = {}

    def ready():
        for terminal in args.terminal:
            row = ledger.db.execute("SELECT edition FROM terminals WHERE terminal = ?", (terminal,)).fetchone()
            if row and row[0] is not None and row[0] < 2:
                log.warning("%s spoke edition %s in its last Status: a SyncRequest needs edition 2", terminal, row[0])
            asked[central.request_sync(terminal)] = terminal

    def finished():
        if central.refused:
            return True  # a terminal refused the request: no answer will come
        if len(central.answers) < len(asked) or not asked:
            return False
        return all((t, j) in central.acked for rid, t in asked.items() for j in central.answers[rid].get("results_undelivered") or [])

    client_id = args.new_client_id or "%s-recover-%s" % (args.client_id, wire.new_id()[:8])
    central.link = link = Link(args, client_id, clean=True, on_message=central.on_message, on_ready=ready)
    link.connect()
    ok = link.pump(finished, deadline=time.monotonic() + args.timeout) and not central.refused
    link.close()
    summary = {}
    for rid, terminal in asked.items():
        answer = central.answers.get(rid)
        want = (answer or {}).get("results_undelivered") or []
        summary[terminal] = {"request_id": rid, "answered": answer is not None, "results_undelivered": want,
                             "acked": sorted(j for t, j in central.acked if t == terminal),
                             "refused": (central.refused.get(rid) or {}).get("reason")}
    emit("recovered" if ok else "recover_incomplete", terminals=summary)
    if central.refused:
        log.error("a terminal refused the SyncRequest: %s", {r: x.get("detail") for r, x in central.refused.items()})
    elif not ok:
        log.error("not every terminal answered in %ds: one of edition 1 ignores a SyncRequest; its next Sync (every "
                  "2 minutes) still lists what it holds", args.timeout)
    central.verifier.close()
    ledger.close()
    return 0 if ok else 2


def cmd_ledger(args):
    ledger = ledgermod.Ledger(args.ledger)
    print(json.dumps(ledger.report(), indent=2, sort_keys=True))
    ledger.close()
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description="A reference central system for Teken signing terminals.")
    ap.add_argument("--broker", default="tcp://127.0.0.1:1883", help="tcp://HOST:PORT or ssl://HOST:PORT")
    ap.add_argument("--root", default="teken/v1", help="topic root (default %(default)s)")
    ap.add_argument("--client-id", default="teken-central", help="MQTT client id of `run` (default %(default)s); fixed, for a persistent session")
    ap.add_argument("--ledger", default="central.sqlite", help="SQLite ledger (default %(default)s)")
    ap.add_argument("--key", help="dispatcher private key, PKCS#8 PEM: EC P-256 (ES256) or Ed25519 (EdDSA)")
    ap.add_argument("--signer-ca", action="append", default=[], help="a CA the signers' certificates chain to (repeatable)")
    ap.add_argument("--openssl", default="openssl")
    ap.add_argument("--tls-ca"), ap.add_argument("--tls-cert"), ap.add_argument("--tls-key")
    ap.add_argument("--username"), ap.add_argument("--password-file")
    ap.add_argument("--resend-grace", type=int, default=60, help="seconds a published job is not re-sent for a Sync (default %(default)s)")
    ap.add_argument("--timeout", type=int, default=60, help="seconds a one-shot command or recover may take")
    ap.add_argument("-v", "--verbose", action="store_true")
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="take receipts, results, status and Syncs until SIGTERM")
    p.add_argument("--no-ack", action="store_true", help="store results but send no ResultAck (to test recovery)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("dispatch", help="sign a job and publish it")
    p.add_argument("--terminal", required=True)
    p.add_argument("--document", action="append", required=True, metavar="FORMAT:PATH", help="cms, raw or pades, and the file (repeatable)")
    p.add_argument("--visible-url", help="for pades documents: a visible block with a QR code of this URL")
    p.add_argument("--signer-cert", help="the signer's certificate (PEM): its SHA-256, name and NIP")
    p.add_argument("--signer-cert-sha256"), p.add_argument("--signer-name"), p.add_argument("--signer-nip")
    p.add_argument("--title", required=True), p.add_argument("--number", required=True)
    p.add_argument("--sender", default="Sekretariat Daerah")
    p.add_argument("--job-id", help="default: a new UUID")
    p.add_argument("--expires-in", type=parse_duration, default="7d", help="e.g. 24h, 7d (at most 90d)")
    p.add_argument("--no-publish", action="store_true", help="keep the job in the ledger only, as if the broker lost it")
    p.set_defaults(func=cmd_dispatch)

    p = sub.add_parser("cancel", help="withdraw a job not yet signed")
    p.add_argument("--terminal", required=True), p.add_argument("--job-id", required=True)
    p.add_argument("--reason", default="surat ditarik")
    p.set_defaults(func=cmd_cancel)

    p = sub.add_parser("request-sync", help="ask terminals for a Sync; `run` answers it")
    p.add_argument("--terminal", action="append", required=True)
    p.set_defaults(func=cmd_request_sync)

    p = sub.add_parser("recover", help="new session: SyncRequest, collect and ack re-sent results")
    p.add_argument("--terminal", action="append", required=True)
    p.add_argument("--new-client-id", help="client id of the new, clean session (default: --client-id with a random suffix)")
    p.set_defaults(func=cmd_recover)

    p = sub.add_parser("ledger", help="print the ledger as JSON")
    p.set_defaults(func=cmd_ledger)

    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s central %(levelname)s %(message)s")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
