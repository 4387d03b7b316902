package queue

import (
	"bytes"
	"encoding/binary"
	"errors"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// TestBlob: a blob reads back whole at every size around its chunk
// boundaries, from a write and from a read-only transaction (whose pages
// dropPages releases), and a corrupt one is a DecodeError, not a panic or
// a short value.
func TestBlob(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "b.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	name := []byte("blobs")
	sizes := []int{0, 1, blobChunk - 1, blobChunk, blobChunk + 1, 5*blobChunk + 17}
	value := func(n int) []byte {
		v := make([]byte, n)
		for i := range v {
			v[i] = byte(i * 7)
		}
		return v
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket(name)
		if err != nil {
			return err
		}
		for _, n := range sizes {
			key := binary.BigEndian.AppendUint32(nil, uint32(n))
			if err := putBlob(b, key, value(n+1)); err != nil { // replaced next
				return err
			}
			if err := putBlob(b, key, value(n)); err != nil {
				return err
			}
			if got, err := getBlob(b, key); err != nil || !bytes.Equal(got, value(n)) {
				t.Errorf("blob of %d in its write: %d bytes, %v", n, len(got), err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(name)
		for _, n := range sizes {
			key := binary.BigEndian.AppendUint32(nil, uint32(n))
			for range 2 { // a second read faults the dropped pages in again
				if got, err := getBlob(b, key); err != nil || !bytes.Equal(got, value(n)) {
					t.Errorf("blob of %d: %d bytes, %v", n, len(got), err)
				}
			}
		}
		if got, err := getBlob(b, []byte("none")); got != nil || err != nil {
			t.Errorf("missing blob: %q %v", got, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	corruptions := map[string]func(b *bolt.Bucket) error{
		"no length":      func(b *bolt.Bucket) error { return b.Delete(blobLenKey) },
		"longer":         func(b *bolt.Bucket) error { return b.Put(blobLenKey, binary.AppendUvarint(nil, 3*blobChunk)) },
		"huge length":    func(b *bolt.Bucket) error { return b.Put(blobLenKey, binary.AppendUvarint(nil, 1<<40)) },
		"chunk missing":  func(b *bolt.Bucket) error { return b.Delete(binary.BigEndian.AppendUint32(nil, 0)) },
		"chunk too long": func(b *bolt.Bucket) error { return b.Put(binary.BigEndian.AppendUint32(nil, 0), value(blobChunk+1)) },
	}
	for what, corrupt := range corruptions {
		err := db.Update(func(tx *bolt.Tx) error {
			parent := tx.Bucket(name)
			key := []byte(what)
			if err := putBlob(parent, key, value(2*blobChunk+5)); err != nil {
				return err
			}
			if err := corrupt(parent.Bucket(key)); err != nil {
				return err
			}
			var de *DecodeError
			if got, err := getBlob(parent, key); !errors.As(err, &de) {
				t.Errorf("%s: %d bytes, %v; want a DecodeError", what, len(got), err)
			}
			return deleteBlob(parent, key)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}
