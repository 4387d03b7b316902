package queue

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"

	bolt "go.etcd.io/bbolt"
)

// appendAudit links e to the last entry and stores it. Seq and Prev are
// always set here; Time and Terminal default to now and the store's terminal.
func (s *Store) appendAudit(tx *bolt.Tx, e *AuditEntry) error {
	seq, err := nextSeq(tx, keyAuditSeq)
	if err != nil {
		return err
	}
	e.Seq = seq
	if e.Time.IsZero() {
		e.Time = s.opts.Now()
	}
	e.Time = e.Time.UTC()
	if e.Terminal == "" {
		e.Terminal = s.opts.TerminalID
	}
	b := tx.Bucket(bucketAudit)
	e.Prev = Digest{}
	if _, last := b.Cursor().Last(); last != nil {
		e.Prev = hashAudit(last)
	}
	if err := b.Put(u64(seq), encodeAudit(e)); err != nil {
		return fmt.Errorf("put audit entry: %w", err)
	}
	return nil
}

// AppendAudit appends an entry for an event the store does not record by
// itself (a PIN failure, a token tapped) and returns it as stored.
func (s *Store) AppendAudit(ctx context.Context, e AuditEntry) (AuditEntry, error) {
	if e.Event == "" {
		return AuditEntry{}, fmt.Errorf("audit entry without event: %w", ErrInvalid)
	}
	err := s.submit(ctx, false, func(tx *bolt.Tx, _ *delta) error {
		return s.appendAudit(tx, &e)
	})
	if err != nil {
		return AuditEntry{}, fmt.Errorf("append audit %s: %w", e.Event, err)
	}
	return e, nil
}

// VerifyAudit walks the whole chain and returns the number of entries. The
// first broken link is reported as *ChainError: a sequence gap, an entry
// that does not decode or is not canonically encoded, or a Prev that is not
// the hash of the entry before.
func (s *Store) VerifyAudit(ctx context.Context) (uint64, error) {
	var n uint64
	err := s.view(ctx, func(tx *bolt.Tx) error {
		var prev Digest
		c := tx.Bucket(bucketAudit).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if n%4096 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			want := n + 1
			if len(k) != 8 || binary.BigEndian.Uint64(k) != want {
				return &ChainError{Seq: want, Reason: fmt.Sprintf("entry missing (next key %x)", k)}
			}
			e, err := decodeAudit(v)
			if err != nil {
				return &ChainError{Seq: want, Reason: err.Error()}
			}
			switch {
			case e.Seq != want:
				return &ChainError{Seq: want, Reason: fmt.Sprintf("entry says seq %d", e.Seq)}
			case !bytes.Equal(encodeAudit(&e), v):
				return &ChainError{Seq: want, Reason: "entry is not canonically encoded"}
			case e.Prev != prev:
				return &ChainError{Seq: want, Reason: "prev hash does not match the entry before"}
			}
			prev = hashAudit(v)
			n++
		}
		last, err := getUint(tx.Bucket(bucketMeta), keyAuditSeq)
		if err != nil {
			return err
		}
		if last != n {
			return &ChainError{Seq: n + 1, Reason: fmt.Sprintf("log ends at %d but %d entries were written", n, last)}
		}
		return nil
	})
	if err != nil {
		return n, fmt.Errorf("verify audit log: %w", err)
	}
	return n, nil
}

// ExportAudit writes the entries with a sequence greater than after to w as
// JSON Lines, one AuditEntry per line, and returns the last sequence written.
func (s *Store) ExportAudit(ctx context.Context, w io.Writer, after uint64) (uint64, error) {
	last := after
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	err := s.view(ctx, func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketAudit).Cursor()
		for k, v := c.Seek(u64(after + 1)); k != nil; k, v = c.Next() {
			e, err := decodeAudit(v)
			if err != nil {
				return fmt.Errorf("entry %x: %w", k, err)
			}
			if err := enc.Encode(&e); err != nil {
				return err
			}
			last = e.Seq
		}
		return nil
	})
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		return last, fmt.Errorf("export audit log: %w", err)
	}
	return last, nil
}

// Backup writes a consistent copy of the whole file to w (a live store can
// be copied this way and the copy opened with OpenReadOnly).
func (s *Store) Backup(ctx context.Context, w io.Writer) (int64, error) {
	var n int64
	err := s.view(ctx, func(tx *bolt.Tx) error {
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	if err != nil {
		return n, fmt.Errorf("backup: %w", err)
	}
	return n, nil
}
