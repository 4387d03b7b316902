package boltstore

// Webhook deliveries and the audit log.

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tekenid/teken/gateway/store"
)

func (s *Store) ClaimDeliveries(ctx context.Context, now, until time.Time, limit int) ([]store.Delivery, error) {
	var out []store.Delivery
	err := s.update(ctx, func(tx *bolt.Tx) error {
		out = nil
		c := tx.Bucket(bucketDue).Cursor()
		var claimed []*store.Delivery
		for k, _ := c.First(); k != nil && len(claimed) < limit; k, _ = c.Next() {
			d, err := getDelivery(tx, binary.BigEndian.Uint64(k))
			if err != nil {
				return err
			}
			if d.NextAt.After(now) || d.LeaseUntil.After(now) {
				continue
			}
			claimed = append(claimed, d)
		}
		for _, d := range claimed {
			d.LeaseUntil = until.UTC()
			if err := putDelivery(tx, d); err != nil {
				return err
			}
			out = append(out, *d)
		}
		return nil
	})
	return out, err
}

func (s *Store) Attempted(ctx context.Context, id uint64, a store.Attempt) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
		d, err := getDelivery(tx, id)
		if err != nil {
			return err
		}
		if d.Done {
			return nil // another instance's attempt got there first
		}
		d.Attempts++
		d.LastStatus, d.LastError, d.LeaseUntil = a.Status, a.Error, time.Time{}
		if a.OK {
			d.Done, d.DoneAt = true, a.At.UTC()
			if err := tx.Bucket(bucketDue).Delete(u64(id)); err != nil {
				return err
			}
		} else {
			d.NextAt = a.NextAt.UTC()
		}
		return putDelivery(tx, d)
	})
}

func (s *Store) Deliveries(ctx context.Context, letterID string) ([]store.Delivery, error) {
	var out []store.Delivery
	err := s.view(ctx, func(tx *bolt.Tx) error {
		out = nil
		prefix := key(letterID, "")
		c := tx.Bucket(bucketLetterDlv).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			d, err := getDelivery(tx, binary.BigEndian.Uint64(k[len(prefix):]))
			if err != nil {
				return err
			}
			out = append(out, *d)
		}
		return nil
	})
	return out, err
}

func putDelivery(tx *bolt.Tx, d *store.Delivery) error {
	raw, err := json.Marshal(d)
	if err != nil {
		return err
	}
	return tx.Bucket(bucketDeliveries).Put(u64(d.ID), raw)
}

func getDelivery(tx *bolt.Tx, id uint64) (*store.Delivery, error) {
	raw := tx.Bucket(bucketDeliveries).Get(u64(id))
	if raw == nil {
		return nil, fmt.Errorf("no delivery %d", id)
	}
	var d store.Delivery
	if err := json.Unmarshal(raw, &d); err != nil {
		return nil, fmt.Errorf("delivery %d: %w", id, err)
	}
	return &d, nil
}

func (s *Store) Audit(ctx context.Context, e store.AuditEntry) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAudit)
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		raw, err := json.Marshal(e)
		if err != nil {
			return err
		}
		return b.Put(u64(seq), raw)
	})
}
