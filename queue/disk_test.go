package queue

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tekenid/teken/internal/testenv"
)

// logCapture keeps a store's log lines for counting.
type logCapture struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logCapture) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logCapture) count(msg string) int { return l.countSince(0, msg) }

// countSince counts the lines of msg after the first from bytes.
func (l *logCapture) countSince(from int, msg string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.b.String()[from:], "msg=\""+msg)
}

// mark is where the log ends now, for countSince.
func (l *logCapture) mark() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Len()
}

func (l *logCapture) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logCapture) logger() *slog.Logger { return slog.New(slog.NewTextHandler(l, nil)) }

const (
	msgFull = "store full"
	msgRoom = "store has room again"
)

// diskJob is a job whose record takes many pages, so that rewriting it
// needs room that a full filesystem does not have.
func diskJob(id string, c *clock, size int) Job {
	j := testJob(id, c)
	j.Envelope = bytes.Repeat([]byte{'e'}, size)
	return j
}

// fillStore inserts jobs, ever smaller ones, each size until one is
// refused, so that the runs of pages bbolt has free in the file are used up
// too, and checks that every refusal is ErrFull.
func fillStore(t *testing.T, s *Store, c *clock) {
	t.Helper()
	n := 2 // after the two of signingJob
	for _, size := range []int{64 << 10, 4 << 10, 256} {
		for ; ; n++ {
			_, _, err := s.Insert(context.Background(), diskJob(fmt.Sprintf("zfill-%04d", n), c, size))
			if errors.Is(err, ErrFull) {
				if !diskFull(err) {
					t.Fatalf("insert on a full filesystem: %v, want ErrFull wrapping ENOSPC", err)
				}
				break
			}
			if err != nil {
				t.Fatalf("insert %d on a filling filesystem: %v, want ErrFull", n, err)
			}
			if n > 2000 {
				t.Fatal("the store never found the filesystem full")
			}
		}
	}
}

// signingJob stores job id with a large record and moves it to signing,
// while the filesystem has room. The record is large through its Meta:
// the envelope is written once, in a bucket of its own, and a change of
// state rewrites only the record.
//
// bbolt keeps a value in its leaf however large, and a leaf of four keys
// or fewer is never split, so the job's record is rewritten with its
// neighbours' whenever one of them is. The job gets two small neighbours
// and two large jobs after them, which splits its leaf off: the jobs that
// fillStore adds later (ids after these) go to other leaves, and use up
// every run of free pages that would hold the job's leaf, so rewriting
// it — the put-back, the recovery — needs new pages.
func signingJob(t *testing.T, s *Store, c *clock, id string) {
	t.Helper()
	big := testJob(id, c)
	big.Meta = bytes.Repeat([]byte{'m'}, 384<<10)
	mustInsert(t, s, big)
	mustInsert(t, s, testJob(id+"-1", c))
	mustInsert(t, s, testJob(id+"-2", c))
	mustInsert(t, s, diskJob("zfill-0000", c, 64<<10))
	mustInsert(t, s, diskJob("zfill-0001", c, 64<<10))
	mustMove(t, s, id, Change{To: Ready})
	mustMove(t, s, id, Change{To: Signing})
}

// failBoth tries to complete job id and then to put it back to ready, and
// checks that both find no room and the job is shown as ready.
func failBoth(t *testing.T, s *Store, id string) {
	t.Helper()
	ctx := context.Background()
	payload := bytes.Repeat([]byte{'r'}, 512<<10)
	if _, err := s.Transition(ctx, id, Change{To: Done, Outcome: Signed, Payload: payload}); !errors.Is(err, ErrFull) {
		t.Fatalf("complete on a full filesystem: %v, want ErrFull", err)
	}
	if _, err := s.Transition(ctx, id, Change{To: Ready, Reason: "abandoned: store full"}); !errors.Is(err, ErrFull) {
		t.Fatalf("put back on a full filesystem: %v, want ErrFull", err)
	}
	checkShownReady(t, s, id)
}

// checkShownReady checks that job id is in signing in the file but shown
// as ready everywhere the store lists it.
func checkShownReady(t *testing.T, s *Store, id string) {
	t.Helper()
	ctx := context.Background()
	_ = s.db.View(func(tx *bolt.Tx) error {
		if !seekHas(tx.Bucket(bucketByState).Cursor(), stateKey(Signing, id)) {
			t.Errorf("job %s is not in signing in the file", id)
		}
		return nil
	})
	if j, err := s.Get(ctx, id); err != nil || j.State != Ready {
		t.Fatalf("Get %s: %v %v, want ready", id, j.State, err)
	}
	ready, err := s.ByStateHeads(ctx, Ready, 0)
	if err != nil || !strings.Contains(ids(ready), id+",") {
		t.Fatalf("ready jobs %q (%v) lack %s", ids(ready), err, id)
	}
	for _, j := range ready {
		if j.State != Ready {
			t.Fatalf("ByState(ready) lists %s in %s", j.ID, j.State)
		}
	}
	if signing, err := s.ByState(ctx, Signing, 0); err != nil || len(signing) != 0 {
		t.Fatalf("signing jobs %q (%v), want none", ids(signing), err)
	}
	mine, err := s.BySignerHeads(ctx, signerA, 0)
	if err != nil || !strings.Contains(ids(mine), id+",") {
		t.Fatalf("signer's jobs %q (%v) lack %s", ids(mine), err, id)
	}
	for _, j := range mine {
		if j.ID == id && j.State != Ready {
			t.Fatalf("BySigner shows %s in %s", id, j.State)
		}
	}
	if st, err := s.Stats(ctx); err != nil || st.Jobs[Signing] != 0 {
		t.Fatalf("stats %+v %v, want no job in signing", st.Jobs, err)
	}
}

// checkFull checks that the store says it is full for lack of disk.
func checkFull(t *testing.T, s *Store) {
	t.Helper()
	st, err := s.Stats(context.Background())
	if err != nil || !s.Full() || !st.Full || !strings.HasPrefix(st.FullCause, "filesystem full: ") ||
		!strings.Contains(st.FullCause, syscall.ENOSPC.Error()) || st.FullSince.IsZero() {
		t.Fatalf("full=%v stats full=%v cause %q since %v (%v), want full for lack of disk",
			s.Full(), st.Full, st.FullCause, st.FullSince, err)
	}
}

func auditEvents(t *testing.T, s *Store, id string) []Event {
	t.Helper()
	var buf bytes.Buffer
	if _, err := s.ExportAudit(context.Background(), &buf, 0); err != nil {
		t.Fatal(err)
	}
	var out []Event
	for _, line := range bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n")) {
		var e struct {
			JobID string `json:"job_id"`
			Event Event  `json:"event"`
		}
		if err := json.Unmarshal(line, &e); err != nil {
			t.Fatalf("export line %q: %v", line, err)
		}
		if e.JobID == id {
			out = append(out, e.Event)
		}
	}
	return out
}

// A full filesystem is a full store: inserts fail with ErrFull, the store
// says so (once in its log, however often it is refused), a job whose
// completion and put-back both find no room is shown as ready, the store
// opens on the full filesystem with that job still signable, and once the
// filler is gone the first write goes through and the recovery is written.
func TestDiskFullReopen(t *testing.T) {
	dir := testenv.SmallFS(t, 8<<20)
	c := newClock()
	var logs logCapture
	opts := testOptions(c)
	opts.Logger, opts.MaxSize = logs.logger(), -1
	path := filepath.Join(dir, "q.db")
	s, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	signingJob(t, s, c, "sig")
	mustInsert(t, s, testJob("waiting", c))
	filler := testenv.FillFS(t, dir)

	fillStore(t, s, c)
	checkFull(t, s)
	// Refused again and again, and the put-back too: nothing more is
	// logged about it (fillStore's smaller jobs may have fitted between
	// larger ones: each a change of state, logged once).
	mark := logs.mark()
	for i := range 20 {
		if _, _, err := s.Insert(ctx, diskJob(fmt.Sprintf("zz-again-%02d", i), c, 64<<10)); !errors.Is(err, ErrFull) {
			t.Fatalf("insert while full: %v", err)
		}
	}
	failBoth(t, s, "sig")
	if n := logs.count(msgFull); n == 0 || logs.countSince(mark, msgFull)+logs.countSince(mark, msgRoom) != 0 {
		t.Fatalf("%q logged %d times, and again while it stayed full:\n%s", msgFull, n, logs.String())
	}
	if n := logs.count("commit failed"); n != 0 {
		t.Fatalf("\"commit failed\" logged %d times for a full disk", n)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}

	// Open on the full filesystem: the recovery cannot be written.
	var logs2 logCapture
	opts.Logger = logs2.logger()
	s = openTest(t, path, opts)
	checkFull(t, s)
	checkShownReady(t, s, "sig")
	if _, err := s.Get(ctx, "waiting"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Transition(ctx, "sig", Change{To: Signing}); !errors.Is(err, ErrFull) {
		t.Fatalf("start signing on a full filesystem: %v, want ErrFull", err)
	}
	checkShownReady(t, s, "sig")

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	mustInsert(t, s, testJob("after", c)) // the first write that goes through
	if s.Full() {
		t.Fatal("still full after a write went through")
	}
	_ = s.db.View(func(tx *bolt.Tx) error {
		if !seekHas(tx.Bucket(bucketByState).Cursor(), stateKey(Ready, "sig")) {
			t.Error("the recovery of sig was not written with the first write")
		}
		return nil
	})
	if got := auditEvents(t, s, "sig"); got[len(got)-1] != EventRecovered {
		t.Fatalf("audit of sig %v, want the recovery last", got)
	}
	if st, _ := s.Stats(ctx); st.Full || st.Jobs[Signing] != 0 {
		t.Fatalf("stats %+v after the repair", st)
	}
	mustMove(t, s, "sig", Change{To: Signing})
	mustMove(t, s, "sig", Change{To: Done, Outcome: Signed, Payload: []byte("signed")})
	if _, err := s.VerifyAudit(ctx); err != nil {
		t.Fatal(err)
	}
	if a, b := logs2.count(msgFull), logs2.count(msgRoom); a != 1 || b != 1 {
		t.Fatalf("reopened store logged %q %d times and %q %d times, want once each:\n%s",
			msgFull, a, msgRoom, b, logs2.String())
	}
}

// Without a restart: the put-back that found no room is written by the
// first write that goes through once there is room — here the official's
// next try at signing the job, which writes the put-back and the new start
// in one transaction.
func TestDiskFullPutBackRepaired(t *testing.T) {
	dir := testenv.SmallFS(t, 8<<20)
	c := newClock()
	var logs logCapture
	opts := testOptions(c)
	opts.Logger, opts.MaxSize = logs.logger(), -1
	s := openTest(t, filepath.Join(dir, "q.db"), opts)
	ctx := context.Background()
	signingJob(t, s, c, "sig")
	filler := testenv.FillFS(t, dir)
	fillStore(t, s, c)
	mark := logs.mark()
	failBoth(t, s, "sig")
	checkFull(t, s)

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if j, err := s.Transition(ctx, "sig", Change{To: Signing, Reason: "again"}); err != nil || j.State != Signing {
		t.Fatalf("sign again once there is room: %+v %v", j.State, err)
	}
	got := auditEvents(t, s, "sig")
	want := []Event{EventReceived, EventReady, EventSigning, EventAbandoned, EventSigning}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("audit of sig %v, want %v", got, want)
	}
	if st, _ := s.Stats(ctx); st.Jobs[Signing] != 1 || st.Jobs[Ready] != 0 {
		t.Fatalf("stats %+v", st.Jobs)
	}
	// The store stays full until an insert goes through.
	if !s.Full() {
		t.Fatal("not full before an insert went through")
	}
	mustInsert(t, s, testJob("after", c))
	if s.Full() {
		t.Fatal("still full after an insert went through")
	}
	if a, b := logs.countSince(mark, msgFull), logs.countSince(mark, msgRoom); a != 0 || b != 1 {
		t.Fatalf("logged %q %d times and %q %d times since full, want 0 and 1:\n%s", msgFull, a, msgRoom, b, logs.String())
	}
	if _, err := s.VerifyAudit(ctx); err != nil {
		t.Fatal(err)
	}
}

// With no write of its own, the sweeper's prune is the write that writes
// the recovery once the filesystem has room again; while it has none, its
// failures are not logged.
func TestDiskFullRepairedBySweeper(t *testing.T) {
	dir := testenv.SmallFS(t, 8<<20)
	c := newClock()
	opts := testOptions(c)
	opts.MaxSize = -1
	path := filepath.Join(dir, "q.db")
	s, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	signingJob(t, s, c, "sig")
	filler := testenv.FillFS(t, dir)
	fillStore(t, s, c)
	failBoth(t, s, "sig")
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}

	var logs logCapture
	opts.Logger, opts.SweepInterval = logs.logger(), 10*time.Millisecond
	s = openTest(t, path, opts)
	checkFull(t, s)
	checkShownReady(t, s, "sig")
	// The sweeper's prunes are refused, again and again.
	refused := s.room.refusals.Load()
	waitFor(t, 10*time.Second, func() bool { return s.room.refusals.Load() >= refused+3 })
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() bool {
		recovered := false
		_ = s.db.View(func(tx *bolt.Tx) error {
			recovered = seekHas(tx.Bucket(bucketByState).Cursor(), stateKey(Ready, "sig"))
			return nil
		})
		return recovered && !s.Full()
	})
	if n := logs.count("prune"); n != 0 {
		t.Fatalf("failed prunes logged %d times:\n%s", n, logs.String())
	}
	if a, b := logs.count(msgFull), logs.count(msgRoom); a != 1 || b != 1 {
		t.Fatalf("logged %q %d times and %q %d times, want once each:\n%s", msgFull, a, msgRoom, b, logs.String())
	}
}
