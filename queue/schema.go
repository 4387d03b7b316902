package queue

import (
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// schemaVersion is the layout this build writes. Bump it and append a
// migration when the layout changes.
const schemaVersion = 1

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

	allBuckets = [][]byte{bucketMeta, bucketJobs, bucketByState, bucketBySigner,
		bucketByExpiry, bucketOutbox, bucketPending, bucketDelivery, bucketAudit}

	keySchema    = []byte("schema")
	keyOutboxSeq = []byte("outbox_seq")
	keyAuditSeq  = []byte("audit_seq")
)

// migration moves a file from version from to from+1 inside one transaction.
type migration struct {
	from uint64
	fn   func(tx *bolt.Tx) error
}

// migrations is the hook for future layout changes, applied in order on Open.
var migrations []migration

// prepare creates the layout of a new file or migrates an older one.
func prepare(tx *bolt.Tx) error {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		return putUint(tx.Bucket(bucketMeta), keySchema, schemaVersion)
	}
	v, err := getUint(meta, keySchema)
	if err != nil {
		return err
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
	return putUint(meta, keySchema, v)
}

// checkLayout verifies a file opened read-only has the layout this build reads.
func checkLayout(tx *bolt.Tx) error {
	for _, name := range allBuckets {
		if tx.Bucket(name) == nil {
			return fmt.Errorf("bucket %s missing: %w", name, ErrSchema)
		}
	}
	v, err := getUint(tx.Bucket(bucketMeta), keySchema)
	if err != nil {
		return err
	}
	if v != schemaVersion {
		return fmt.Errorf("file has schema %d, this build reads %d: %w", v, schemaVersion, ErrSchema)
	}
	return nil
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
