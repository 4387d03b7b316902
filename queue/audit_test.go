package queue

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

func decodeJSONEntry(t *testing.T, line []byte) AuditEntry {
	t.Helper()
	var e struct {
		Seq   uint64 `json:"seq"`
		Event Event  `json:"event"`
		Prev  Digest `json:"prev"`
	}
	if err := json.Unmarshal(line, &e); err != nil {
		t.Fatalf("export line %q: %v", line, err)
	}
	return AuditEntry{Seq: e.Seq, Event: e.Event, Prev: e.Prev}
}

func TestAuditEntryHoldsNoSecrets(t *testing.T) {
	// Documents may appear only as fixed-size digests, and no field may be
	// named like a PIN or a document body.
	typ := reflect.TypeOf(AuditEntry{})
	for i := range typ.NumField() {
		f := typ.Field(i)
		name := strings.ToLower(f.Name)
		if strings.Contains(name, "pin") || strings.Contains(name, "document") || strings.Contains(name, "payload") {
			t.Errorf("field %s may hold a secret or a document", f.Name)
		}
		if f.Type.Kind() == reflect.Slice && f.Type.Elem() != reflect.TypeOf(Digest{}) {
			t.Errorf("field %s is a %s; only []Digest may be a list", f.Name, f.Type)
		}
	}
}

func TestAuditChainTamper(t *testing.T) {
	tests := []struct {
		name    string
		tamper  func(b *bolt.Bucket) error
		wantSeq uint64
	}{
		{"edited reason", func(b *bolt.Bucket) error {
			e, _ := decodeAudit(b.Get(u64(3)))
			e.Reason = "nothing happened"
			return b.Put(u64(3), encodeAudit(&e))
		}, 4},
		{"deleted entry", func(b *bolt.Bucket) error { return b.Delete(u64(2)) }, 2},
		{"deleted last entry", func(b *bolt.Bucket) error { return b.Delete(u64(5)) }, 5},
		{"garbage", func(b *bolt.Bucket) error { return b.Put(u64(1), []byte{1, 2, 3}) }, 1},
		{"non-canonical varint", func(b *bolt.Bucket) error {
			v := append([]byte(nil), b.Get(u64(2))...)
			// Seq 2 encoded as 0x82 0x00 decodes to the same value.
			v = append([]byte{v[0], 0x82, 0x00}, v[2:]...)
			return b.Put(u64(2), v)
		}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClock()
			path := filepath.Join(t.TempDir(), "q.db")
			s, err := Open(path, testOptions(c))
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			mustInsert(t, s, testJob("a", c))
			mustMove(t, s, "a", Change{To: Ready})
			mustMove(t, s, "a", Change{To: Done, Outcome: Cancelled, Reason: "withdrawn"})
			if _, err := s.AppendAudit(ctx, AuditEntry{Event: "pin.failed", Signer: signerA, Reason: "wrong pin, 2 tries left"}); err != nil {
				t.Fatal(err)
			}
			if _, err := s.AppendAudit(ctx, AuditEntry{Event: "token.removed"}); err != nil {
				t.Fatal(err)
			}
			if n, err := s.VerifyAudit(ctx); err != nil || n != 5 {
				t.Fatalf("before tamper: n=%d %v", n, err)
			}
			if err := s.db.Update(func(tx *bolt.Tx) error { return tt.tamper(tx.Bucket(bucketAudit)) }); err != nil {
				t.Fatal(err)
			}
			_, err = s.VerifyAudit(ctx)
			var ce *ChainError
			if !errors.As(err, &ce) || ce.Seq != tt.wantSeq {
				t.Fatalf("verify: got %v, want *ChainError at %d", err, tt.wantSeq)
			}
			if err := s.Close(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestAuditExport(t *testing.T) {
	c := newClock()
	s := openTest(t, filepath.Join(t.TempDir(), "q.db"), testOptions(c))
	ctx := context.Background()
	mustInsert(t, s, testJob("a", c))
	mustMove(t, s, "a", Change{To: Done, Outcome: Rejected, Reason: "unknown sender"})
	var buf bytes.Buffer
	last, err := s.ExportAudit(ctx, &buf, 0)
	if err != nil || last != 2 {
		t.Fatalf("export: last=%d %v", last, err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("export has %d lines:\n%s", len(lines), buf.String())
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(lines[1]), &got); err != nil {
		t.Fatal(err)
	}
	raw, _ := s.db.Begin(false)
	defer raw.Rollback()
	first := hashAudit(raw.Bucket(bucketAudit).Get(u64(1)))
	want := map[string]any{"seq": 2.0, "event": "job.done", "outcome": "rejected", "reason": "unknown sender",
		"job_id": "a", "terminal": "kendari-setda-01", "signer": signerA, "prev": mustText(first),
		"time": "2026-03-01T08:00:00Z", "docs": []any{mustText(Digest{1, 2, 3})}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("export line\n got %v\nwant %v", got, want)
	}
}

func mustText(d Digest) string {
	b, _ := d.MarshalText()
	return string(b)
}
