package queue

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

const (
	crashEnvDB  = "TEKEN_QUEUE_CRASH_DB"
	crashEnvRun = "TEKEN_QUEUE_CRASH_RUN"
)

// crashSkew is the helper's ReplaySkew: short, so that replay guards are
// kept, outlive their window and are pruned within a run.
const crashSkew = time.Millisecond

// crashEnvelope is the envelope of the helper's job id.
func crashEnvelope(id string) []byte { return []byte(strings.Repeat("e", 300) + id) }

// TestCrashHelper is the child process of TestCrash: it writes a stream of
// inserts, transitions and deliveries and prints each durable point as
// "I id expires" (inserted; expires in Unix ns, 0 for none), "D id" (done)
// or "A seq" (acknowledged). Meanwhile it prunes delivered results after
// a millisecond, so done jobs leave replay guards that are pruned in turn.
func TestCrashHelper(t *testing.T) {
	path := os.Getenv(crashEnvDB)
	if path == "" {
		t.Skip("child process of TestCrash only")
	}
	run := os.Getenv(crashEnvRun)
	s, err := Open(path, Options{Timeout: 10 * time.Second, TerminalID: "crash", Logger: quiet, SweepInterval: time.Hour,
		Retention: time.Millisecond, ReplaySkew: crashSkew})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var out sync.Mutex
	say := func(format string, a ...any) {
		out.Lock()
		fmt.Fprintf(os.Stdout, format+"\n", a...)
		out.Unlock()
	}
	ctx := context.Background()
	go func() {
		for {
			if _, err := s.Prune(ctx); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(3)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				id := fmt.Sprintf("r%s-w%d-%05d", run, w, i)
				j := Job{ID: id, Signer: signerA, Envelope: crashEnvelope(id), Digests: []Digest{{byte(i)}}}
				if rand.IntN(4) != 0 { // the window ends from a little before now to a second after
					j.ExpiresAt = time.Now().Add(time.Duration(rand.IntN(1200)-200) * time.Millisecond)
				}
				if _, _, err := s.Insert(ctx, j); err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(3)
				}
				var exp int64
				if !j.ExpiresAt.IsZero() {
					exp = j.ExpiresAt.UnixNano()
				}
				say("I %s %d", id, exp)
				if _, _, err := s.Insert(ctx, j); err != nil { // duplicates never make a second record
					os.Exit(3)
				}
				steps := []Change{{To: Ready}, {To: Signing}, {To: Done, Outcome: Signed, Payload: []byte("sig")}}
				switch rand.IntN(4) {
				case 0:
					steps = []Change{{To: Done, Outcome: Failed}}
				case 1:
					steps = steps[:1+rand.IntN(2)] // left ready or signing
				}
				for _, c := range steps {
					dj, err := s.Transition(ctx, id, c)
					if te := (*TransitionError)(nil); errors.As(err, &te) && te.From == Done {
						// The sweeper expired it meanwhile, durably: the
						// transaction that saw it done began after that one
						// committed.
						say("D %s", id)
						break
					}
					if err != nil {
						fmt.Fprintln(os.Stderr, err)
						os.Exit(3)
					}
					if c.To == Done {
						say("D %s", id)
						if rand.IntN(2) == 0 {
							if err := s.MarkDelivered(ctx, dj.ResultSeq); err != nil {
								os.Exit(3)
							}
							say("A %d", dj.ResultSeq)
						}
					}
				}
			}
		}()
	}
	wg.Wait()
}

// TestCrash kills a writer with SIGKILL at many random points and checks,
// after each reopen, that nothing reported durable was lost or doubled.
func TestCrash(t *testing.T) {
	kills := 200
	if testing.Short() {
		kills = 30
	}
	path := filepath.Join(t.TempDir(), "crash.db")
	inserted := map[string]int64{} // id → expires (Unix ns, 0 for none)
	done := map[string]bool{}
	acked := map[uint64]bool{}
	recovered := 0
	start := time.Now()
	for k := range kills {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelper$")
		cmd.Env = append(os.Environ(), crashEnvDB+"="+path, fmt.Sprintf("%s=%d", crashEnvRun, k))
		cmd.Stderr = os.Stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := bufio.NewScanner(stdout)
		target := rand.IntN(80)
		if k%10 == 0 {
			target = 0 // sometimes kill during open and recovery
		}
		read := func() bool {
			if !lines.Scan() {
				return false
			}
			kind, val, _ := strings.Cut(lines.Text(), " ")
			switch kind {
			case "I":
				id, exp, _ := strings.Cut(val, " ")
				var ns int64
				fmt.Sscan(exp, &ns)
				inserted[id] = ns
			case "D":
				done[val] = true
			case "A":
				var seq uint64
				fmt.Sscan(val, &seq)
				acked[seq] = true
			}
			return true
		}
		for n := 0; n < target && read(); n++ {
		}
		<-time.After(time.Duration(rand.IntN(3000)) * time.Microsecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatalf("kill %d: %v", k, err)
		}
		for read() { // lines written before the kill were durable too
		}
		_ = cmd.Wait()
		if k%20 == 19 || k == kills-1 {
			recovered += checkCrashFile(t, path, inserted, done, acked)
		}
	}
	t.Logf("%d kills in %s: %d durable inserts, %d done, %d acknowledged, %d signing jobs recovered, %d jobs pruned, %d replay guards at the end",
		kills, time.Since(start).Round(time.Millisecond), len(inserted), len(done), len(acked), recovered, crashPruned, crashGuards)
	if len(inserted) == 0 || len(done) == 0 {
		t.Fatal("the helper never reached a durable point")
	}
}

// What the last checkCrashFile found, for the log.
var crashPruned, crashGuards int

// checkCrashFile reopens the file and checks every invariant; it returns
// how many signing jobs this reopen moved back to ready.
func checkCrashFile(t *testing.T, path string, inserted map[string]int64, done map[string]bool, acked map[uint64]bool) int {
	t.Helper()
	// Count jobs left in signing before Open recovers them.
	raw, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 10 * time.Second, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	signing := 0
	var lastAudit uint64
	_ = raw.View(func(tx *bolt.Tx) error {
		lastAudit, _ = getUint(tx.Bucket(bucketMeta), keyAuditSeq)
		c := tx.Bucket(bucketByState).Cursor()
		for k, _ := c.Seek([]byte{byte(Signing)}); k != nil && k[0] == byte(Signing); k, _ = c.Next() {
			signing++
		}
		return nil
	})
	raw.Close()

	s, err := Open(path, Options{Timeout: 10 * time.Second, Logger: quiet, SweepInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	ctx := context.Background()
	if _, err := s.VerifyAudit(ctx); err != nil {
		t.Fatal(err)
	}
	checkedAt := time.Now()
	var guarded []string
	err = s.db.View(func(tx *bolt.Tx) error {
		stateOf := map[string]State{}
		c := tx.Bucket(bucketByState).Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			id := string(k[1:])
			if _, dup := stateOf[id]; dup {
				t.Errorf("job %s indexed in two states", id)
			}
			stateOf[id] = State(k[0])
		}
		results := map[string]int{}
		_ = tx.Bucket(bucketOutbox).ForEach(func(k, v []byte) error {
			r, err := decodeResult(v)
			if err != nil {
				t.Errorf("result %x: %v", k, err)
			}
			results[r.JobID]++
			if acked[r.Seq] && r.DeliveredAt.IsZero() {
				t.Errorf("result %d acknowledged but not delivered", r.Seq)
			}
			return nil
		})
		jobs := 0
		_ = tx.Bucket(bucketJobs).ForEach(func(k, v []byte) error {
			jobs++
			j, err := decodeJob(v)
			if err != nil {
				t.Errorf("job %s: %v", k, err)
				return nil
			}
			switch {
			case stateOf[j.ID] != j.State:
				t.Errorf("job %s is %s but indexed as %s", j.ID, j.State, stateOf[j.ID])
			case j.State == Signing:
				t.Errorf("job %s stuck in signing", j.ID)
			case j.State == Done && results[j.ID] != 1:
				t.Errorf("done job %s has %d outbox entries", j.ID, results[j.ID])
			case j.State != Done && results[j.ID] != 0:
				t.Errorf("job %s in %s has %d outbox entries", j.ID, j.State, results[j.ID])
			}
			return nil
		})
		if jobs != len(stateOf) {
			t.Errorf("%d jobs but %d state index entries", jobs, len(stateOf))
		}
		recovered := 0
		doneAudit := map[string]bool{}
		_ = tx.Bucket(bucketAudit).ForEach(func(_, v []byte) error {
			e, _ := decodeAudit(v)
			if e.Event == EventRecovered && e.Seq > lastAudit {
				recovered++
			}
			if e.Event == EventDone {
				doneAudit[e.JobID] = true
			}
			return nil
		})
		guards := readGuards(t, tx)
		crashGuards, crashPruned = len(guards), 0
		for id, exp := range inserted {
			if _, ok := stateOf[id]; ok {
				continue
			}
			// Gone: only pruning removes a job, and only a done one with a
			// delivered result, leaving a guard until its window is over.
			crashPruned++
			until := time.Time{}
			if exp != 0 {
				until = time.Unix(0, exp).Add(crashSkew)
			}
			g, ok := guards[id]
			switch {
			case !doneAudit[id]:
				t.Errorf("durable insert %s lost (never done, so never pruned)", id)
			case ok && (g.EnvelopeSHA256 != Digest(sha256.Sum256(crashEnvelope(id))) || !g.Until.Equal(until)):
				t.Errorf("guard of %s is %+v, want until %s and its envelope's hash", id, g, until)
			case !ok && (until.IsZero() || !until.Before(checkedAt)):
				t.Errorf("job %s pruned without a replay guard, its window open until %s", id, until)
			}
			if ok && len(guarded) < 5 {
				guarded = append(guarded, id)
			}
		}
		for id := range done {
			if st, ok := stateOf[id]; ok && st != Done {
				t.Errorf("durable done job %s is %s", id, st)
			}
		}
		if recovered != signing {
			t.Errorf("%d recovery audit entries on reopen, want %d", recovered, signing)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := s.Stats(ctx); err != nil || st.ReplayGuards != crashGuards {
		t.Errorf("Stats.ReplayGuards %d (%v), want %d", st.ReplayGuards, err, crashGuards)
	}
	for _, id := range guarded { // a replay of a pruned job stores nothing
		j := Job{ID: id, Signer: signerA, Envelope: crashEnvelope(id)}
		if _, created, err := s.Insert(ctx, j); !errors.Is(err, ErrReplayed) || created {
			t.Errorf("replay of pruned job %s: created=%v %v, want ErrReplayed", id, created, err)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	return signing
}
