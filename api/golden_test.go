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
// message. Jobs, cancels, acks, batches of acks and sync requests are the
// JWS payloads. The
// job, its envelope, the control payloads, the receipts and the signed
// result are those of the test vectors (testdata/vectors, vectors_test.go),
// so that every hash and signature in them checks out.
func golden() []struct {
	name, schema string
	msg          Message
} {
	v := mustVectors()
	return []struct {
		name, schema string
		msg          Message
	}{
		{"job", "job", v.job},
		{"job-v2", "job", goldenJobV2(v.job, false)},
		{"job-v2-paraf", "job", goldenJobV2(v.job, true)},
		{"cancel", "cancel", v.cancel},
		{"result-ack", "result-ack", v.ack},
		{"result-acks", "result-acks", v.acks},
		{"sync-request", "sync-request", v.syncReq},
		{"receipt-stored", "receipt", v.receipts["receipt-stored"]},
		{"receipt-duplicate", "receipt", v.receipts["receipt-duplicate"]},
		{"receipt-refused", "receipt", v.receipts["receipt-refused-expired"]},
		{"receipt-refused-no-id", "receipt", v.receipts["receipt-refused-unsigned"]},
		{"receipt-conflict", "receipt", v.receipts["receipt-conflict"]},
		{"result-signed", "result", v.result},
		{"result-rejected", "result", &Result{V: Version, JobID: sampleJobID, Terminal: sampleTerminal, Outcome: OutcomeRejected, Reason: ReasonRejectedBySigner, Detail: "nomor surat salah", CompletedAt: t0.Add(3 * time.Hour)}},
		{"result-expired", "result", &Result{V: Version, JobID: sampleJobID, Terminal: sampleTerminal, Outcome: OutcomeExpired, Reason: ReasonExpired, CompletedAt: t0.Add(7 * 24 * time.Hour)}},
		{"status-online", "status", &Status{V: Version, Terminal: sampleTerminal, State: StateOnline, Version: "1.0.0", TokenPresent: true, JobsWaiting: 3, ResultsUndelivered: 1, Since: t0, Edition: Edition}},
		{"status-offline", "status", &Status{V: Version, Terminal: sampleTerminal, State: StateOffline, Version: "1.0.0", LastError: "token removed while signing", Since: t0}},
		{"sync", "sync", &Sync{V: Version, Terminal: sampleTerminal, At: t0, JobsWaiting: []string{sampleJobID, "0f8fad5b-d9cb-469f-a165-70867728950e"}, ResultsUndelivered: []string{"01JGZ9A0B1C2D3E4F5G6H7J8K9"}, Trigger: SyncOnInterval}},
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

// TestGoldenEnvelope pins a whole signed job, the test vectors'
// job.ed25519.jws: Ed25519 signatures are deterministic, so the envelope is
// stable. It is written without a newline, so that the receipts'
// envelope_sha256 is the SHA-256 of the file, and it must verify with
// testdata/keys/ed25519.pub.pem.
func TestGoldenEnvelope(t *testing.T) {
	v, err := vectors()
	if err != nil {
		t.Fatal(err)
	}
	env := v.file("job.ed25519.jws")
	checkGolden(t, "job.jws", env)
	raw, err := os.ReadFile(filepath.Join("testdata", "golden", "job.jws"))
	if err != nil {
		t.Fatal(err)
	}
	j, _, err := testVerifier(t).VerifyJob(raw)
	if err != nil {
		t.Fatalf("golden envelope: %v", err)
	}
	if !reflect.DeepEqual(j, v.job) {
		t.Errorf("golden envelope carries %+v", j)
	}
	if got := readGolden(t, "receipt-stored"); !bytes.Contains(got, []byte(`"envelope_sha256":"`+EnvelopeSHA256(raw)+`"`)) {
		t.Errorf("receipt-stored.json does not hash job.jws (%s): %s", EnvelopeSHA256(raw), got)
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

// goldenJobV2 is the vectors' job as v 2 with one pades document: the
// ttd of the letter's issuer, placed by anchor, certifying the letter,
// or a paraf with initials.
func goldenJobV2(base *Job, paraf bool) *Job {
	j := *base
	j.V = VersionMarks
	j.Signer.Jabatan = "Sekretaris Daerah Provinsi Sulawesi Tenggara"
	pdf := []byte("%PDF-1.7\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n")
	d := NewDocument("surat", "undangan-rapat.pdf", "application/pdf", pdf)
	d.Format = FormatPAdES
	if paraf {
		d.Visible = &Visible{Mark: MarkParaf, Initials: "LOB", Anchor: &Anchor{Text: "^", Occurrence: 1, Offset: []float64{0, -4}}}
	} else {
		d.Visible = &Visible{Mark: MarkTTD, VerifyURL: "https://tte.example.go.id/v/" + base.JobID,
			Anchor: &Anchor{Text: "${ttd_sekda}", Offset: []float64{-20, -60}, Size: []float64{220, 80}}}
		d.Certify = true
	}
	j.Documents = []Document{d}
	return &j
}
