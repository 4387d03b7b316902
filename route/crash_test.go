package route

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/transport"
)

const crashEnvLedger = "TEKEN_ROUTE_CRASH_LEDGER"

// crashRoutes are the routes of the crash test: 24 letters of 3 to 5 steps.
func crashRoutes() []Route {
	out := make([]Route, 24)
	for i := range out {
		out[i] = letter(fmt.Sprintf("r%02d", i), 3+i%3)
	}
	return out
}

// chanPub publishes into a channel the helper's terminals read, dropping
// what does not fit: a lost publication is what Sync is for.
type chanPub chan transport.PendingJob

func (c chanPub) PublishEnvelope(_ context.Context, p transport.PendingJob) error {
	select {
	case c <- p:
	default:
	}
	return nil
}

// TestCrashHelper is the child process of TestCrash: a Router with a small
// compaction threshold and in-process terminals that sign every job they
// get, sometimes sending the result twice or a stale one besides. It
// prints "A job-id" once OnResult returned nil for a signed result, and
// "DONE" when every route is done. The terminals die with it: what they
// held comes back through the JobStore, as a terminal's Sync would get it.
func TestCrashHelper(t *testing.T) {
	path := os.Getenv(crashEnvLedger)
	if path == "" {
		t.Skip("child process of TestCrash only")
	}
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	r, err := Open(Config{Path: path, Signer: plainSigner{}, CompactBytes: 24 << 10, RetryMin: time.Millisecond, RetryMax: 10 * time.Millisecond})
	if err != nil {
		fail(err)
	}
	ctx := context.Background()
	pub := make(chanPub, 4096)
	if err := r.Resume(ctx, pub); err != nil {
		fail(err)
	}
	for _, term := range []string{"t1", "t2"} {
		p, err := r.Pending(ctx, term)
		if err != nil {
			fail(err)
		}
		for _, j := range p {
			pub <- j
		}
	}
	for _, rt := range crashRoutes() {
		if _, ok := r.Get(rt.ID); !ok {
			if err := r.Start(ctx, rt); err != nil {
				fail(err)
			}
		}
	}
	done := func() bool {
		for _, s := range r.Routes() {
			if s.State != RouteDone {
				return false
			}
		}
		return true
	}
	if done() {
		fmt.Println("DONE")
		os.Exit(0)
	}
	for range 3 {
		go func() {
			var stale *api.Result
			for p := range pub {
				var j api.Job
				if err := json.Unmarshal(p.Envelope, &j); err != nil {
					fail(err)
				}
				res := signedBy(&j)
				n := 1 + rand.IntN(2)
				for range n {
					if err := r.OnResult(ctx, res); err != nil {
						fail(err)
					}
				}
				fmt.Printf("A %s\n", j.JobID)
				if stale != nil && rand.IntN(4) == 0 {
					if err := r.OnResult(ctx, stale); err != nil {
						fail(err)
					}
				}
				stale = res
				if done() {
					fmt.Println("DONE")
					os.Exit(0)
				}
			}
		}()
	}
	select {}
}

// TestCrash kills the helper with SIGKILL at random points while results
// come in, reopening the ledger each time, then lets it finish and checks
// that every route ended with each step signed exactly once, in order,
// and that no result it acknowledged was lost.
func TestCrash(t *testing.T) {
	kills := 40
	if testing.Short() {
		kills = 10
	}
	path := filepath.Join(t.TempDir(), "routes.ledger")
	acked := map[string]bool{}
	start := time.Now()
	finished, runs, killed := false, 0, 0
	child := func(k int, kill bool) {
		runs++
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelper$")
		cmd.Env = append(os.Environ(), crashEnvLedger+"="+path)
		cmd.Stderr = os.Stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := bufio.NewScanner(stdout)
		read := func() bool {
			if !lines.Scan() {
				return false
			}
			kind, val, _ := strings.Cut(lines.Text(), " ")
			switch kind {
			case "A":
				acked[val] = true
			case "DONE":
				finished = true
			}
			return true
		}
		if kill {
			target := rand.IntN(10)
			if k%8 == 0 {
				target = 0 // sometimes during Open and Resume
			}
			for n := 0; n < target && read(); n++ {
			}
			<-time.After(time.Duration(rand.IntN(3000)) * time.Microsecond)
			_ = cmd.Process.Signal(syscall.SIGKILL)
		}
		if !kill { // the last run must finish by itself
			stop := time.AfterFunc(time.Minute, func() { _ = cmd.Process.Signal(syscall.SIGKILL) })
			defer stop.Stop()
		}
		for read() { // lines written before the kill were durable too
		}
		err = cmd.Wait()
		if kill && !finished {
			killed++
		}
		if !kill && err != nil {
			t.Fatalf("helper: %v", err)
		}
		// The ledger reads whole after every kill.
		if _, err := ReadLedger(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("after kill %d: %v", k, err)
		}
	}
	for k := 0; k < kills && !finished; k++ {
		child(k, true)
	}
	if !finished {
		child(kills, false)
	}
	if !finished {
		t.Fatal("the helper ended without every route done")
	}
	raw, _ := os.ReadFile(path)
	compacted := bytes.Contains(raw, []byte(`"op":"snapshot"`))

	r := openRouter(t, path, Config{})
	signed := map[string]bool{}
	for _, rt := range crashRoutes() {
		s := status(t, r, rt.ID)
		if s.State != RouteDone {
			t.Fatalf("route %s %s at step %d", rt.ID, s.State, s.Current)
		}
		want := bytes.Clone(rt.PDF)
		for i, st := range s.Steps {
			want = append(want, []byte("|sig "+cert(i)[56:]+"\n")...)
			if st.State != StepSigned || signed[st.JobID] {
				t.Fatalf("route %s step %d: %s, job %s", rt.ID, i, st.State, st.JobID)
			}
			signed[st.JobID] = true
		}
		if !bytes.Equal(s.PDF, want) {
			t.Fatalf("route %s: final PDF\n%q, want\n%q", rt.ID, s.PDF, want)
		}
	}
	for id := range acked {
		if !signed[id] {
			t.Errorf("result of job %s acknowledged, but no step holds it", id)
		}
	}
	t.Logf("%d runs of the helper, %d of them killed; %d routes, %d steps signed, %d results acknowledged in %s; ledger %d bytes, compacted %v",
		runs, killed, len(crashRoutes()), len(signed), len(acked), time.Since(start).Round(time.Millisecond), len(raw), compacted)
}
