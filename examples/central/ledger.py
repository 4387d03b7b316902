"""The central system's ledger: the jobs it dispatched and the results it
stored, in SQLite (Python's standard library).

The ledger is what makes the protocol's promises hold on this side:
a job is written here before it is published (so a Sync can bring it out
again), and a result is committed here before its ResultAck is sent ("Sent
after the central system has *stored* a result", ResultAck). Each write is
its own transaction, committed before the caller goes on.
"""

import json
import sqlite3

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    terminal          TEXT NOT NULL,
    job_id            TEXT NOT NULL,
    envelope          BLOB NOT NULL,   -- the exact bytes published, re-sent as they are
    envelope_sha256   TEXT NOT NULL,   -- what receipts name
    kid               TEXT NOT NULL,
    expires_at        TEXT NOT NULL,
    dispatched_at     TEXT NOT NULL,
    last_published_at TEXT,            -- NULL: never reached the broker
    state             TEXT NOT NULL,   -- pending, held, refused, cancelled, expired, done
    reason            TEXT,
    PRIMARY KEY (terminal, job_id)
);
CREATE INDEX IF NOT EXISTS jobs_by_envelope ON jobs (envelope_sha256);
CREATE TABLE IF NOT EXISTS results (
    terminal     TEXT NOT NULL,
    job_id       TEXT NOT NULL,
    outcome      TEXT NOT NULL,
    result       TEXT NOT NULL,        -- the Result JSON as received
    verified     INTEGER,              -- 1, 0, or NULL when there is no signature
    verify_error TEXT,
    stored_at    TEXT NOT NULL,
    copies       INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (terminal, job_id)
);
CREATE TABLE IF NOT EXISTS terminals (
    terminal     TEXT PRIMARY KEY,
    state        TEXT,
    edition      INTEGER,
    version      TEXT,
    status_at    TEXT,
    last_sync_at TEXT                  -- the newest Sync answered
);
"""


class Ledger:
    def __init__(self, path):
        # A rollback journal, not WAL: the file alone is the whole ledger,
        # so copying it while nobody writes is a complete backup.
        self.db = sqlite3.connect(path, timeout=30, isolation_level=None)
        self.db.execute("PRAGMA busy_timeout = 30000")
        self.db.executescript(SCHEMA)

    def close(self):
        self.db.close()

    def _one(self, sql, *args):
        return self.db.execute(sql, args).fetchone()

    # --- jobs ---------------------------------------------------------------

    def add_job(self, terminal, job_id, envelope, envelope_sha256, kid, expires_at, at):
        self.db.execute(
            "INSERT INTO jobs (terminal, job_id, envelope, envelope_sha256, kid, expires_at, dispatched_at, state)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, 'pending')",
            (terminal, job_id, envelope, envelope_sha256, kid, expires_at, at))

    def published(self, terminal, job_id, at):
        self.db.execute("UPDATE jobs SET last_published_at = ? WHERE terminal = ? AND job_id = ?", (at, terminal, job_id))

    def job(self, terminal, job_id):
        row = self._one("SELECT envelope, state, envelope_sha256, kid FROM jobs WHERE terminal = ? AND job_id = ?", terminal, job_id)
        return None if row is None else {"envelope": row[0], "state": row[1], "envelope_sha256": row[2], "kid": row[3]}

    def job_by_envelope(self, terminal, sha):
        row = self._one("SELECT job_id, state FROM jobs WHERE terminal = ? AND envelope_sha256 = ?", terminal, sha)
        return None if row is None else {"job_id": row[0], "state": row[1]}

    def set_state(self, terminal, job_id, state, reason=None, only_from=None):
        sql = "UPDATE jobs SET state = ?, reason = ? WHERE terminal = ? AND job_id = ?"
        args = [state, reason, terminal, job_id]
        if only_from:
            sql += " AND state IN (%s)" % ",".join("?" * len(only_from))
            args += list(only_from)
        self.db.execute(sql, args)

    def open_jobs(self, terminal):
        """Jobs dispatched to the terminal with no result and no refusal:
        what a Sync may have to re-send."""
        return self.db.execute(
            "SELECT job_id, envelope, expires_at, last_published_at FROM jobs"
            " WHERE terminal = ? AND state IN ('pending', 'held')"
            " AND job_id NOT IN (SELECT job_id FROM results WHERE terminal = ?) ORDER BY dispatched_at",
            (terminal, terminal)).fetchall()

    # --- results --------------------------------------------------------------

    def has_result(self, terminal, job_id):
        return self._one("SELECT 1 FROM results WHERE terminal = ? AND job_id = ?", terminal, job_id) is not None

    def store_result(self, terminal, job_id, outcome, result_json, verified, verify_error, at):
        """Store a result the first time; count a duplicate. Returns True
        for a new one. One transaction: the job's state moves with it."""
        with self.db:  # commits on success, rolls back on an exception
            self.db.execute("BEGIN IMMEDIATE")
            if self.has_result(terminal, job_id):
                self.db.execute("UPDATE results SET copies = copies + 1 WHERE terminal = ? AND job_id = ?", (terminal, job_id))
                new = False
            else:
                self.db.execute(
                    "INSERT INTO results (terminal, job_id, outcome, result, verified, verify_error, stored_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (terminal, job_id, outcome, result_json, verified, verify_error, at))
                self.db.execute("UPDATE jobs SET state = 'done' WHERE terminal = ? AND job_id = ?", (terminal, job_id))
                new = True
        return new

    # --- terminals ------------------------------------------------------------

    def status(self, terminal, state, edition, version, at):
        self.db.execute(
            "INSERT INTO terminals (terminal, state, edition, version, status_at) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (terminal) DO UPDATE SET state = excluded.state, edition = excluded.edition,"
            " version = excluded.version, status_at = excluded.status_at",
            (terminal, state, edition, version, at))

    def last_sync(self, terminal):
        row = self._one("SELECT last_sync_at FROM terminals WHERE terminal = ?", terminal)
        return row[0] if row else None

    def synced(self, terminal, at):
        self.db.execute(
            "INSERT INTO terminals (terminal, last_sync_at) VALUES (?, ?)"
            " ON CONFLICT (terminal) DO UPDATE SET last_sync_at = excluded.last_sync_at", (terminal, at))

    def report(self):
        """Everything, as JSON-ready dicts, for `central.py ledger`."""
        jobs = []
        for row in self.db.execute(
                "SELECT j.terminal, j.job_id, j.kid, j.state, j.reason, j.last_published_at IS NOT NULL,"
                " r.outcome, r.verified, r.verify_error, r.copies, r.result"
                " FROM jobs j LEFT JOIN results r ON r.terminal = j.terminal AND r.job_id = j.job_id ORDER BY j.dispatched_at"):
            formats = [d["format"] for d in json.loads(row[10]).get("documents", [])] if row[10] else []
            jobs.append({"terminal": row[0], "job_id": row[1], "kid": row[2], "state": row[3], "reason": row[4],
                         "published": bool(row[5]), "outcome": row[6],
                         "verified": None if row[7] is None else bool(row[7]), "verify_error": row[8],
                         "copies": row[9], "formats": formats})
        orphans = [{"terminal": r[0], "job_id": r[1], "outcome": r[2]} for r in self.db.execute(
            "SELECT terminal, job_id, outcome FROM results WHERE job_id NOT IN (SELECT job_id FROM jobs)")]
        return {"jobs": jobs, "results_without_job": orphans}
