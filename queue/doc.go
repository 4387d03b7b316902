// Package queue is the terminal's durable store on bbolt: jobs and their
// state machine, the outbox of results, and the hash-chained audit log.
//
// A Store owns one bbolt file and all of its layout (see schema.go). Every
// write goes through a single committer goroutine that gathers whatever was
// queued into one bbolt transaction and answers each caller only after that
// transaction is on disk (group commit). One caller's logical error — a
// forbidden transition, an unknown job — never fails the other callers whose
// work shares its transaction.
//
// # Job states
//
//	received → ready → signing → done
//	received → done (rejected, failed, expired)
//	ready    → done (rejected, expired, cancelled)
//	signing  → ready (signing abandoned; also on open after a crash)
//	signing  → done (signed, failed)
//
// Moving a job to done writes its Result to the outbox and an AuditEntry in
// the same transaction, so a done job always has exactly one result.
//
// The sweeper expires every received or ready job whose ExpiresAt has
// passed (done, outcome expired, with the Result of Options.ExpiryPayload):
// at Open, whenever the soonest ExpiresAt of those jobs passes, and every
// SweepInterval. Options.OnExpired hears of the jobs once the transaction
// that expired them is durable. A job in signing is left to its signer; it
// is expired as soon as it is back to ready.
//
// A move from signing back to ready that cannot be written — the put-back
// after a failed signing, or the recovery on Open, when the store has no
// room (see below) — is owed: the job stays in signing in the file, but
// every read shows it ready (Get, ByState, BySigner, ExpiringBefore,
// Stats), a write that changes it writes the move first, in the same
// transaction, and after the next commit that goes through the committer
// writes every move still owed, each with the audit entry it would have
// had (job.abandoned or job.recovered). A restart owes the move again
// through the recovery on Open. So no job is left in signing.
//
// A done job whose result was delivered longer than Options.Retention ago
// is pruned with its result (Prune); the audit log keeps its entries. What
// is left of it is a replay guard, while its envelope could still be
// accepted:
//
//	done → pruned, guard kept until ExpiresAt + ReplaySkew → guard pruned
//	done → pruned, no guard (ExpiresAt + ReplaySkew already before now)
//	done → pruned, guard kept forever (the job has no ExpiresAt)
//
// While a guard is kept, Insert of its id stores nothing and fails with
// *ReplayError (errors.Is ErrReplayed), with the same envelope or another:
// the id is spent. Prune removes a guard once its Until is before now,
// never earlier; an id whose guard is gone is a new job to Insert (the
// envelope verifier refuses the old envelope by then as expired).
//
// # Room
//
// A commit that finds no room — the size cap (Options.MaxSize) reached,
// or the filesystem full (ENOSPC or EDQUOT, as bbolt reports them) — stores
// nothing and fails with ErrFull, which the caller must not acknowledge.
// The store is then Full (Stats.Full, with the cause) until a write of the
// kind refused goes through: for a refused Insert, an Insert that stores a
// job; for any other write, any write, and the moves still owed after it.
// The log says so once per change, not per attempt. Open works on a full
// filesystem for a file of the current schema: the recovery is then owed.
// Past its first megabyte bbolt grows the file 1 MiB at a time (allocSize,
// not bbolt's 16 MiB), so a little freed space is enough to drain.
//
// # Layout
//
// The bbolt buckets of schema 3 (meta "schema" holds the version, an
// 8-byte big-endian integer like the other meta values "outbox_seq" and
// "audit_seq"); a seq or a time in a key is 8 bytes big-endian, a time in
// Unix nanoseconds, ‖ is concatenation and ∅ an empty value:
//
//	meta              name → 8-byte value
//	jobs              job id → job record
//	idx_state         state byte ‖ job id → ∅
//	idx_signer        signer ‖ 0x00 ‖ job id → ∅ (jobs not done)
//	idx_expiry        ExpiresAt ‖ job id → ∅ (jobs not done, with an ExpiresAt)
//	outbox            seq → result record
//	pending           seq → ∅ (results not yet delivered)
//	delivered         DeliveredAt ‖ seq → ∅ (delivered results, for retention)
//	audit             seq → audit record
//	replay            job id → replay guard record (schema 2)
//	idx_replay_until  Until ‖ job id → ∅ (guards with an Until; schema 2)
//	envelopes         job id → blob: the job's envelope (schema 3)
//	payloads          seq → blob: the result's payload (schema 3)
//
// A blob is a bucket of its own: key "n" holds the value's length as a
// uvarint, keys of four bytes (big-endian 0, 1, …) its chunks of 64 KiB,
// the last one shorter. bbolt keeps a value inside its leaf and never
// splits a leaf of four keys or fewer, so megabyte values side by side in
// one bucket would be read and written again whenever a neighbour is; a
// blob is written once, when its job or result is, and deleted whole.
//
// Schema 2 keeps envelopes and payloads inside the job and result records
// (record version 1) and has neither of the last two buckets; schema 1
// also lacks the replay guards. Open migrates a file step by step: 1 → 2
// creates the guard buckets, empty (jobs pruned before the upgrade left no
// guard); 2 → 3 moves every envelope and payload into its blob and
// rewrites its record as version 2, in one transaction. OpenReadOnly reads
// an older file as it is.
//
// # Record encoding
//
// Records are stored in a compact binary encoding rather than JSON: the
// envelope bytes are kept verbatim without base64 growth, the decoder is
// small enough to fuzz exhaustively, and the encoding is canonical (one
// byte string per value), which the audit chain needs for hashing. Each
// record starts with a version byte; a decoder rejects versions it does
// not know with an error rather than guessing.
//
// Primitive encodings: an unsigned integer is a uvarint
// (encoding/binary); a string or byte string is its length as a uvarint
// followed by the bytes; a time is the signed varint of its Unix time in
// nanoseconds (0 for the zero time); a Digest is its 32 bytes; a list is
// its length as a uvarint followed by its elements; State, Outcome are one
// byte each.
//
// A job is encoded, in this order, as: version byte 2, ID, Terminal,
// Signer, Meta, EnvelopeSHA256 (as a byte string of 32), Digests (list of
// Digest), ReceivedAt, ExpiresAt, UpdatedAt, State, Outcome, Reason,
// ResultSeq. A result: version byte 2, Seq, JobID, Outcome, Reason, an
// empty byte string, CreatedAt, DeliveredAt. Version 1 of either (schema
// 2 and older) holds the Envelope or the Payload itself in that place.
//
// A replay guard is encoded as: version byte 1, job id (string),
// EnvelopeSHA256 (Digest: SHA-256 of the job's stored envelope bytes,
// which are the bytes received, so it equals the envelope_sha256 of the
// job's receipt), Until (time; 0 when kept forever). The decoder also
// refuses an empty id and an Until before 1970. For example the guard of
// job "a" kept forever is the 36 bytes
//
//	01 01 61 <32 bytes of SHA-256> 00
//
// # Audit chain
//
// An AuditEntry is encoded, in this order, as: version byte 1, Seq, Time,
// Terminal, JobID, Event, Signer, Docs (list of Digest), Outcome, Reason,
// Prev (Digest). That byte string is what is stored and what is hashed:
// the hash of an entry is SHA-256 of its encoding, and Prev of entry n is
// the hash of entry n-1 (all zero for the first). Verify re-encodes each
// decoded entry and compares it with the stored bytes, so a non-canonical
// rewrite is caught too. AuditEntry has no field that can hold a PIN or a
// document: documents appear only as fixed-size SHA-256 digests.
package queue
