package api

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

// golden lists every golden message: name, schema it must satisfy, and the
// message. Jobs, cancels and acks are the JWS payloads.
func golden() []struct {
	name, schema string
	msg          Message
} {
	return []struct {
		name, schema string
		msg          Message
	}{
		{"job", "job", sampleJob()},
		{"cancel", "cancel", sampleCancel()},
		{"result-ack", "result-ack", sampleResultAck()},
		{"receipt-stored", "receipt", &Receipt{V: Version, Terminal: sampleTerminal, JobID: sampleJobID, EnvelopeSHA256: sampleCertHash, Status: ReceiptStored, At: t0.Add(time.Minute)}},
		{"receipt-duplicate", "receipt", &Receipt{V: Version, Terminal: sampleTerminal, JobID: sampleJobID, EnvelopeSHA256: sampleCertHash, Status: ReceiptDuplicate, At: t0.Add(2 * time.Minute)}},
		{"receipt-refused", "receipt", &Receipt{V: Version, Terminal: sampleTerminal, JobID: sampleJobID, EnvelopeSHA256: sampleCertHash, Status: ReceiptRefused, Reason: ReasonExpired, Detail: "expired at 2026-01-12T01:00:00Z, now 2026-01-13T08:00:00Z", At: t0.Add(time.Minute)}},
		{"receipt-refused-no-id", "receipt", &Receipt{V: Version, Terminal: sampleTerminal, EnvelopeSHA256: sampleCertHash, Status: ReceiptRefused, Reason: ReasonMalformed, Detail: "not a compact JWS: 0 dots, want 2", At: t0.Add(time.Minute)}},
		{"result-signed", "result", sampleSignedResult()},
		{"result-rejected", "result", &Result{V: Version, JobID: sampleJobID, Terminal: sampleTerminal, Outcome: OutcomeRejected, Reason: ReasonRejectedBySigner, Detail: "nomor surat salah", CompletedAt: t0.Add(3 * time.Hour)}},
		{"result-expired", "result", &Result{V: Version, JobID: sampleJobID, Terminal: sampleTerminal, Outcome: OutcomeExpired, Reason: ReasonExpired, CompletedAt: t0.Add(7 * 24 * time.Hour)}},
		{"status-online", "status", &Status{V: Version, Terminal: sampleTerminal, State: StateOnline, Version: "1.0.0", TokenPresent: true, JobsWaiting: 3, ResultsUndelivered: 1, Since: t0}},
		{"status-offline", "status", &Status{V: Version, Terminal: sampleTerminal, State: StateOffline, Version: "1.0.0", LastError: "token removed while signing", Since: t0}},
		{"sync", "sync", &Sync{V: Version, Terminal: sampleTerminal, At: t0, JobsWaiting: []string{sampleJobID, "0f8fad5b-d9cb-469f-a165-70867728950e"}, ResultsUndelivered: []string{"01JGZ9A0B1C2D3E4F5G6H7J8K9"}}},
		{"sync-empty", "sync", &Sync{V: Version, Terminal: sampleTerminal, At: t0}},
	}
}

// TestGolden pins the wire form of every message: a change to a field name,
// a tag or an encoding shows up as a diff of testdata/golden.
func TestGolden(t *testing.T) {
	for _, g := range golden() {
		t.Run(g.name, func(t *testing.T) {
			got, err := Encode(g.msg)
			if err != nil {
				t.Fatal(err)
			}
			checkGolden(t, g.name+".json", got)
			// The golden bytes decode back to the same message.
			back := reflect.New(reflect.TypeOf(g.msg).Elem()).Interface().(Message)
			if err := decode(got, MaxResultBytes, true, back); err != nil {
				t.Fatalf("decode golden: %v", err)
			}
			want := g.msg
			if s, ok := want.(*Sync); ok && s.JobsWaiting == nil {
				want = &Sync{V: s.V, Terminal: s.Terminal, At: s.At, JobsWaiting: []string{}, ResultsUndelivered: []string{}}
			}
			if !reflect.DeepEqual(back, want) {
				t.Errorf("round trip:\n got %+v\nwant %+v", back, want)
			}
		})
	}
}

// TestGoldenEnvelope pins a whole signed job: Ed25519 signatures are
// deterministic, so the envelope is stable, and it must verify.
func TestGoldenEnvelope(t *testing.T) {
	env, err := loadSigner(t, "ed25519").SignJob(sampleJob())
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "job.jws", append(env, '\n'))
	raw, err := os.ReadFile(filepath.Join("testdata", "golden", "job.jws"))
	if err != nil {
		t.Fatal(err)
	}
	j, _, err := testVerifier(t).VerifyJob(bytes.TrimSpace(raw))
	if err != nil {
		t.Fatalf("golden envelope: %v", err)
	}
	if !reflect.DeepEqual(j, sampleJob()) {
		t.Errorf("golden envelope carries %+v", j)
	}
}

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./api -run Golden -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (rerun with -update if intended):\n got %s\nwant %s", name, got, want)
	}
}
