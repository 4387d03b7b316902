package route

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// seedLedger is a ledger a Router wrote: routes started, advanced,
// stopped and, with compact, rewritten as snapshots.
func seedLedger(f *testing.F, compact bool) []byte {
	path := filepath.Join(f.TempDir(), "seed.ledger")
	cfg := Config{}
	if compact {
		cfg.CompactBytes = 1
	}
	r := openRouter(f, path, cfg)
	pub := &fakePub{}
	_ = r.Resume(context.Background(), pub)
	for _, rt := range []Route{letter("a", 2), letter("b", 3)} {
		if err := r.Start(context.Background(), rt); err != nil {
			f.Fatal(err)
		}
	}
	jobs := pub.waitJobs(f, 2)
	_ = r.OnResult(context.Background(), signedBy(jobs[0]))
	_ = r.OnResult(context.Background(), signedBy(pub.waitJobs(f, 3)[2]))
	no := signedBy(jobs[1])
	no.Outcome, no.Documents, no.Reason, no.Detail = "rejected", nil, "rejected_by_signer", "salah"
	_ = r.OnResult(context.Background(), no)
	_ = r.Close(context.Background())
	raw, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	return raw
}

// FuzzLedger: replay never panics on any file, stops only at a line it
// names or at a torn end, and a state it accepts survives being written
// as snapshots (compaction) and read again unchanged.
func FuzzLedger(f *testing.F) {
	plain, compacted := seedLedger(f, false), seedLedger(f, true)
	f.Add(plain)
	f.Add(compacted)
	f.Add(plain[:len(plain)-7])
	f.Add([]byte("{}\n"))
	f.Add([]byte(`{"op":"forget","route":"a"}` + "\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, end, err := replay(bytes.NewReader(data))
		if err != nil {
			return
		}
		if end > int64(len(data)) || (end < int64(len(data)) && bytes.IndexByte(data[end:], '\n') >= 0) {
			t.Fatalf("replay stopped at %d of %d with a whole line after it", end, len(data))
		}
		want, err := json.Marshal(b.list())
		if err != nil {
			t.Fatal(err)
		}
		again, err := encodeRecords(b.snapshotRecords())
		if err != nil {
			t.Fatal(err)
		}
		b2, end2, err := replay(bytes.NewReader(again))
		if err != nil {
			t.Fatalf("snapshots do not replay: %v\n%s", err, again)
		}
		if end2 != int64(len(again)) {
			t.Fatalf("snapshots replay to %d of %d bytes", end2, len(again))
		}
		got, _ := json.Marshal(b2.list())
		if !bytes.Equal(got, want) {
			t.Fatalf("state changed through snapshots:\n%s\nwant\n%s", got, want)
		}
	})
}
