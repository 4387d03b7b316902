package queue

import (
	"bytes"
	"reflect"
	"testing"
	"time"
)

func seedJob() Job {
	t := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	return Job{ID: "01HZX3K5", Terminal: "kendari-setda-01", Signer: signerA, Meta: []byte(`{"title":"x"}`),
		Envelope: []byte("eyJ.eyJ.sig"), Digests: []Digest{{1}, {2}}, ReceivedAt: t, ExpiresAt: t.Add(time.Hour),
		UpdatedAt: t, State: Done, Outcome: Signed, Reason: "ok", ResultSeq: 7}
}

func FuzzDecodeJob(f *testing.F) {
	j := seedJob()
	f.Add(encodeJob(&j))
	f.Add(encodeJobInline(&j))
	f.Add(encodeJob(&Job{ID: "a", State: Received}))
	f.Add([]byte{jobVersion})
	f.Add([]byte{2, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		j, err := decodeJob(b)
		if err != nil {
			return
		}
		// A record of either version is written back as the current one,
		// which leaves the envelope out.
		j.Envelope = nil
		again, err := decodeJob(encodeJob(&j))
		if err != nil || !reflect.DeepEqual(j, again) {
			t.Fatalf("round trip: %v\n%+v\n%+v", err, j, again)
		}
	})
}

func FuzzDecodeResult(f *testing.F) {
	t0 := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	f.Add(encodeResult(&Result{Seq: 1, JobID: "a", Outcome: Rejected, Reason: "r", Payload: []byte("{}"), CreatedAt: t0}))
	f.Add(encodeResult(&Result{Seq: 1 << 40, JobID: "b", Outcome: Signed, CreatedAt: t0, DeliveredAt: t0.Add(time.Second)}))
	f.Add(encodeResultInline(&Result{Seq: 2, JobID: "c", Outcome: Signed, Payload: []byte(`{"v":1}`), CreatedAt: t0}))
	f.Add([]byte{resultVersion, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeResult(b)
		if err != nil {
			return
		}
		r.Payload = nil // written back as the current version, without it
		again, err := decodeResult(encodeResult(&r))
		if err != nil || !reflect.DeepEqual(r, again) {
			t.Fatalf("round trip: %v\n%+v\n%+v", err, r, again)
		}
	})
}

func FuzzDecodeAudit(f *testing.F) {
	t0 := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	f.Add(encodeAudit(&AuditEntry{Seq: 1, Time: t0, Terminal: "t", JobID: "a", Event: EventDone, Signer: signerA,
		Docs: []Digest{{9}}, Outcome: Expired, Reason: "expired", Prev: Digest{1, 2}}))
	f.Add(encodeAudit(&AuditEntry{Seq: 2, Event: "pin.failed"}))
	f.Add([]byte{auditVersion, 1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := decodeAudit(b)
		if err != nil {
			return
		}
		enc := encodeAudit(&e)
		again, err := decodeAudit(enc)
		if err != nil || !reflect.DeepEqual(e, again) {
			t.Fatalf("round trip: %v\n%+v\n%+v", err, e, again)
		}
		// Canonical: decoding and re-encoding a canonical record is the identity.
		if !bytes.Equal(encodeAudit(&again), enc) {
			t.Fatal("encoding is not canonical")
		}
	})
}

func FuzzDecodeGuard(f *testing.F) {
	t0 := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	f.Add(encodeGuard(&guard{ID: "01HZX3K5", EnvelopeSHA256: Digest{0xde, 0xad}, Until: t0.Add(90 * 24 * time.Hour)}))
	f.Add(encodeGuard(&guard{ID: "a", EnvelopeSHA256: Digest{1}})) // kept forever
	f.Add([]byte{guardVersion, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		g, err := decodeGuard(b)
		if err != nil {
			return
		}
		if g.ID == "" || (!g.Until.IsZero() && g.Until.UnixNano() < 0) {
			t.Fatalf("decoded an invalid guard %+v", g)
		}
		enc := encodeGuard(&g)
		again, err := decodeGuard(enc)
		if err != nil || !reflect.DeepEqual(g, again) {
			t.Fatalf("round trip: %v\n%+v\n%+v", err, g, again)
		}
		if !bytes.Equal(encodeGuard(&again), enc) {
			t.Fatal("encoding is not canonical")
		}
	})
}

func TestDecodeErrors(t *testing.T) {
	j := seedJob()
	good := encodeJob(&j)
	tests := map[string][]byte{
		"empty":           nil,
		"unknown version": append([]byte{9}, good[1:]...),
		"truncated":       good[:len(good)-3],
		"trailing":        append(append([]byte(nil), good...), 0),
		"bad state":       func() []byte { k := j; k.State = 9; return encodeJob(&k) }(),
		"bad outcome":     func() []byte { k := j; k.Outcome = 42; return encodeJob(&k) }(),
		"huge length":     {jobVersion, 0xff, 0xff, 0xff, 0xff, 0x0f},
	}
	for name, b := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := decodeJob(b); err == nil {
				t.Fatal("decoded without error")
			}
		})
	}
	if _, err := decodeJob(good); err != nil {
		t.Fatalf("good record: %v", err)
	}
}
