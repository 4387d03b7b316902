package queue

import (
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// schemaVersion is the layout this build writes. Bump it and append a
// migration when the layout changes.
//
//	1: jobs, indexes, outbox, audit log
//	2: adds the replay guards (bucketGuards, bucketByGuardUntil)
//	3: envelopes and result payloads out of their records, into
//	   bucketEnvelopes and bucketPayloads
//	4: results held back from the outbox (bucketHeld)
const schemaVersion = 4

// The file's layout. Index buckets hold keys only and are kept in the same
// transaction as the record they index.
var (
	bucketMeta     = []byte("meta")       // schema version, sequences
	bucketJobs     = []byte("jobs")       // job id → job record
	bucketByState  = []byte("idx_state")  // state byte ‖ job id → ∅
	bucketBySigner = []byte("idx_signer") // signer ‖ 0x00 ‖ job id → ∅ (jobs not done)
	bucketByExpiry = []byte("idx_expiry") // expires-at ns (8 bytes BE) ‖ job id → ∅ (jobs not done)
	bucketOutbox   = []byte("outbox")     // seq (8 bytes BE) → result record
	bucketPending  = []byte("pending")    // seq → ∅ for results not yet delivered
	bucketDelivery = []byte("delivered")  // delivered-at ns ‖ seq → ∅, for retention
	bucketAudit    = []byte("audit")      // seq (8 bytes BE) → audit record
	// Since schema 2: what is left of a pruned job while its envelope could
	// still be replayed (see Prune).
	bucketGuards       = []byte("replay")           // job id → replay guard record
	bucketByGuardUntil = []byte("idx_replay_until") // until ns (8 bytes BE) ‖ job id → ∅ (guards with an Until)
	// Since schema 3: each job's envelope, written once when it is stored
	// and deleted with the job.
	bucketEnvelopes = []byte("envelopes") // job id → blob of the envelope (see putBlob)
	bucketPayloads  = []byte("payloads")  // seq (8 bytes BE) → blob of the result's payload
	// Since schema 4: results stored but not to be sent until released
	// (HeldResults, ReleaseResult); they are in bucketPending only after.
	bucketHeld = []byte("held") // seq (8 bytes BE) → ∅

	// layouts[v] lists the buckets of schema v; each version keeps all of
	// the buckets of the one before.
	layouts = [...][][]byte{
		1: {bucketMeta, bucketJobs, bucketByState, bucketBySigner,
			bucketByExpiry, bucketOutbox, bucketPending, bucketDelivery, bucketAudit},
		2: {bucketMeta, bucketJobs, bucketByState, bucketBySigner,
			bucketByExpiry, bucketOutbox, bucketPending, bucketDelivery, bucketAudit,
			bucketGuards, bucketByGuardUntil},
		3: {bucketMeta, bucketJobs, bucketByState, bucketBySigner,
			bucketByExpiry, bucketOutbox, bucketPending, bucketDelivery, bucketAudit,
			bucketGuards, bucketByGuardUntil, bucketEnvelopes, bucketPayloads},
		4: {bucketMeta, bucketJobs, bucketByState, bucketBySigner,
			bucketByExpiry, bucketOutbox, bucketPending, bucketDelivery, bucketAudit,
			bucketGuards, bucketByGuardUntil, bucketEnvelopes, bucketPayloads, bucketHeld},
	}
	allBuckets = layouts[schemaVersion]

	keySchema    = []byte("schema")
	keyOutboxSeq = []byte("outbox_seq")
	keyAuditSeq  = []byte("audit_seq")
)

// migration moves a file from version from to from+1 inside one transaction.
type migration struct {
	from uint64
	fn   func(tx *bolt.Tx) error
}

// migrations are the layout changes, applied in order on Open.
var migrations = []migration{
	// 1 → 2: the replay guards. A file of schema 1 has none: jobs it pruned
	// before the upgrade left nothing behind.
	{from: 1, fn: func(tx *bolt.Tx) error { return createBuckets(tx, bucketGuards, bucketByGuardUntil) }},
	// 2 → 3: every job's envelope moves to bucketEnvelopes and its record
	// is rewritten with the envelope's SHA-256 in its place; every
	// result's payload moves to bucketPayloads.
	{from: 2, fn: func(tx *bolt.Tx) error {
		if err := createBuckets(tx, bucketEnvelopes, bucketPayloads); err != nil {
			return err
		}
		if err := moveEnvelopesOut(tx); err != nil {
			return err
		}
		return movePayloadsOut(tx)
	}},
	// 3 → 4: nothing was held before.
	{from: 3, fn: func(tx *bolt.Tx) error { return createBuckets(tx, bucketHeld) }},
}

// recordKeys lists the keys of bucket b: bbolt forbids writes to a bucket
// while a cursor walks it.
func recordKeys(b *bolt.Bucket) ([][]byte, error) {
	var keys [][]byte
	err := b.ForEach(func(k, _ []byte) error {
		keys = append(keys, append([]byte{}, k...))
		return nil
	})
	return keys, err
}

func movePayloadsOut(tx *bolt.Tx) error {
	outbox, payloads := tx.Bucket(bucketOutbox), tx.Bucket(bucketPayloads)
	keys, err := recordKeys(outbox)
	if err != nil {
		return err
	}
	for _, k := range keys {
		r, inline, err := decodeResultWith(outbox.Get(k), true)
		if err != nil {
			return fmt.Errorf("result %x: %w", k, err)
		}
		if !inline {
			continue
		}
		if err := putBlob(payloads, k, r.Payload); err != nil {
			return fmt.Errorf("result %x: put payload: %w", k, err)
		}
		if err := outbox.Put(k, encodeResult(&r)); err != nil {
			return fmt.Errorf("result %x: %w", k, err)
		}
	}
	return nil
}

func moveEnvelopesOut(tx *bolt.Tx) error {
	jobs, envelopes := tx.Bucket(bucketJobs), tx.Bucket(bucketEnvelopes)
	ids, err := recordKeys(jobs)
	if err != nil {
		return err
	}
	for _, id := range ids {
		j, inline, err := decodeJobWith(jobs.Get(id), true)
		if err != nil {
			return fmt.Errorf("job %s: %w", id, err)
		}
		if !inline {
			continue
		}
		if err := putBlob(envelopes, id, j.Envelope); err != nil {
			return fmt.Errorf("job %s: put envelope: %w", id, err)
		}
		if err := jobs.Put(id, encodeJob(&j)); err != nil {
			return fmt.Errorf("job %s: %w", id, err)
		}
	}
	return nil
}

func createBuckets(tx *bolt.Tx, names ...[]byte) error {
	for _, name := range names {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return fmt.Errorf("create bucket %s: %w", name, err)
		}
	}
	return nil
}

// prepare creates the layout of a new file or migrates an older one.
func prepare(tx *bolt.Tx) error {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		if err := createBuckets(tx, allBuckets...); err != nil {
			return err
		}
		return putUint(tx.Bucket(bucketMeta), keySchema, schemaVersion)
	}
	v, err := getUint(meta, keySchema)
	if err != nil {
		return err
	}
	if v == 0 {
		return fmt.Errorf("file has no schema version: %w", ErrSchema)
	}
	if v > schemaVersion {
		return fmt.Errorf("file has schema %d, this build knows %d: %w", v, schemaVersion, ErrSchema)
	}
	for _, m := range migrations {
		if m.from != v {
			continue
		}
		if err := m.fn(tx); err != nil {
			return fmt.Errorf("migrate schema %d → %d: %w", v, v+1, err)
		}
		v++
	}
	if v != schemaVersion {
		return fmt.Errorf("no migration from schema %d: %w", v, ErrSchema)
	}
	if err := putUint(meta, keySchema, v); err != nil {
		return err
	}
	_, err = checkLayout(tx)
	return err
}

// checkLayout verifies a file has the complete layout of the schema it
// says it has, one this build reads, and returns that version. A file
// opened read-only is not migrated: one of an older schema is read as it
// is, without the buckets later versions added (read paths treat a
// missing later bucket as empty).
func checkLayout(tx *bolt.Tx) (uint64, error) {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		return 0, fmt.Errorf("bucket %s missing: %w", bucketMeta, ErrSchema)
	}
	v, err := getUint(meta, keySchema)
	if err != nil {
		return 0, err
	}
	if v == 0 || v > schemaVersion {
		return 0, fmt.Errorf("file has schema %d, this build reads 1 to %d: %w", v, schemaVersion, ErrSchema)
	}
	for _, name := range layouts[v] {
		if tx.Bucket(name) == nil {
			return 0, fmt.Errorf("schema %d: bucket %s missing: %w", v, name, ErrSchema)
		}
	}
	return v, nil
}

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(make([]byte, 0, 8), v) }

func getUint(b *bolt.Bucket, key []byte) (uint64, error) {
	v := b.Get(key)
	if v == nil {
		return 0, nil
	}
	if len(v) != 8 {
		return 0, &DecodeError{Kind: "meta", Reason: fmt.Sprintf("%s has %d bytes", key, len(v))}
	}
	return binary.BigEndian.Uint64(v), nil
}

func putUint(b *bolt.Bucket, key []byte, v uint64) error {
	if err := b.Put(key, u64(v)); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	return nil
}

// nextSeq returns the next value of a never-reused counter kept in meta.
func nextSeq(tx *bolt.Tx, key []byte) (uint64, error) {
	meta := tx.Bucket(bucketMeta)
	v, err := getUint(meta, key)
	if err != nil {
		return 0, err
	}
	v++
	return v, putUint(meta, key, v)
}

func stateKey(s State, id string) []byte {
	return append([]byte{byte(s)}, id...)
}

func signerKey(signer, id string) []byte {
	k := make([]byte, 0, len(signer)+1+len(id))
	k = append(k, signer...)
	k = append(k, 0)
	return append(k, id...)
}

func expiryKey(j *Job) []byte {
	return append(u64(uint64(j.ExpiresAt.UnixNano())), j.ID...)
}

// guardUntilKey is the index key of a guard with a non-zero Until.
func guardUntilKey(g *guard) []byte {
	return append(u64(uint64(g.Until.UnixNano())), g.ID...)
}
