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
