package daemon_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/daemon"
	"github.com/tekenid/teken/daemon/admin"
	"github.com/tekenid/teken/daemon/kiosk"
	"github.com/tekenid/teken/internal/tekentest"
	"github.com/tekenid/teken/internal/testenv"
	"github.com/tekenid/teken/queue"
	"github.com/tekenid/teken/transport"
)

// storeView is what a store file holds: jobs, results, the audit log.
type storeView struct {
	jobs    map[string]queue.Job // without envelopes
	results []queue.Result       // by sequence, from 1
	audit   [][]byte             // the entries, as exported
}

// viewStore reads a store file as tekenctl audit does (read-only).
func viewStore(t *testing.T, path string) storeView {
	t.Helper()
	ctx := context.Background()
	s, err := queue.OpenReadOnly(path, queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	if _, err := s.VerifyAudit(ctx); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	v := storeView{jobs: map[string]queue.Job{}}
	for st := queue.Received; st <= queue.Done; st++ {
		jobs, err := s.ByStateHeads(ctx, st, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range jobs {
			v.jobs[j.ID] = j
		}
	}
	stats, err := s.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for seq := uint64(1); seq <= stats.LastOutboxSeq; seq++ {
		r, err := s.Result(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		v.results = append(v.results, r)
	}
	var b bytes.Buffer
	if _, err := s.ExportAudit(ctx, &b, 0); err != nil {
		t.Fatal(err)
	}
	v.audit = bytes.Split(bytes.TrimSuffix(b.Bytes(), []byte("\n")), []byte("\n"))
	return v
}

// results is what the central side received, by job id.
type results struct {
	mu  sync.Mutex
	got map[string][]*api.Result
}

func (r *results) add(_ context.Context, res *api.Result) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got[res.JobID] = append(r.got[res.JobID], res)
	return nil
}

func (r *results) await(t *testing.T, id string, outcome api.Outcome) {
	t.Helper()
	err := testenv.WaitFor(context.Background(), 30*time.Second, func() error {
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, res := range r.got[id] {
			if res.Outcome == outcome {
				return nil
			}
		}
		return fmt.Errorf("no %s result for %s: %v", outcome, id, r.got[id])
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A backup taken while jobs arrive is restored on the stopped terminal:
// it starts with the jobs, results and audit chain of the backup, goes on
// signing, and gets back, by the Sync rule, the jobs that arrived after
// the backup.
func TestBackupWhileJobsFlowAndRestore(t *testing.T) {
	ca := tekentest.NewSignerCA(t)
	siti := ca.NewOfficial(t, "Siti Rahmawati", "198703152010012003", "123456", 4001)
	got := &results{got: map[string][]*api.Result{}}
	c := newCentral(t)
	o := newOwnTekend(t, nil, func(cfg *daemon.Config) { cfg.Signing.SignerCAFiles = []string{ca.PEMPath} })
	d, keyFile := c.dispatcher(o.broker.URL, "central", func(dc *transport.DispatcherConfig) {
		dc.OnResult = got.add
		dc.ResendGrace = time.Millisecond // a job lost is re-sent at the next Sync
	})
	o.write(func(cfg *daemon.Config) { cfg.Dispatcher.KeyFiles = []string{keyFile} })
	o.start()
	ctx := context.Background()

	// Before the backup: Siti signs one letter of three, one more is
	// cancelled.
	var mine []*api.Job
	for _, title := range []string{"undangan", "nota-dinas", "surat-edaran"} {
		j := letter(siti.Hash, title)
		if r := c.send(d, j); r.Status != api.ReceiptStored {
			t.Fatalf("job %s: %+v", title, r)
		}
		mine = append(mine, j)
	}
	cancelled := letter(someSigner, "dibatalkan")
	c.send(d, cancelled)
	if err := d.Cancel(ctx, "kendari-setda-01", cancelled.JobID, "salah alamat"); err != nil {
		t.Fatal(err)
	}
	got.await(t, cancelled.JobID, api.OutcomeCancelled)
	k := tekentest.OpenKiosk(t, o.kioskURL)
	if err := siti.Card.Insert(ctx, o.pcscd.VPCDAddr(0)); err != nil {
		t.Fatal(err)
	}
	k.Await("Siti's letters", func(v kiosk.View) bool { return v.CanSign && len(v.Jobs) == 3 })
	if code, out := k.Sign([]string{mine[0].JobID}, siti.PIN); code != 200 {
		t.Fatalf("sign: %d %v", code, out)
	}
	got.await(t, mine[0].JobID, api.OutcomeSigned)

	// Jobs go on arriving while the backup is taken.
	flowCtx, stopFlow := context.WithCancel(ctx)
	var mu sync.Mutex
	var flowed []*api.Job
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; flowCtx.Err() == nil; i++ {
			j := letter(someSigner, fmt.Sprintf("arus-%d", i))
			if err := d.Publish(ctx, j); err != nil {
				t.Errorf("publish: %v", err)
				return
			}
			mu.Lock()
			flowed = append(flowed, j)
			mu.Unlock()
		}
	})
	// The backup starts once the terminal has stored jobs of the flow.
	if err := testenv.WaitFor(ctx, 30*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(flowed) < 3 || !c.stored(flowed[2].JobID) {
			return errors.New("the flow has not begun")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	backup := filepath.Join(t.TempDir(), "tekend-backup.db")
	fb, err := admin.BackupFile(ctx, o.socket, backup, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.BackupFile(ctx, o.socket, backup, false); !errors.Is(err, admin.ErrExists) {
		t.Errorf("a second backup to the same file without -force: %v, want ErrExists", err)
	}
	stopFlow()
	wg.Wait()
	for _, j := range flowed {
		c.receipt(j.JobID)
	}
	if fi, err := os.Stat(backup); err != nil || fi.Mode() != 0o600 {
		t.Fatalf("backup file: %v, %v", fi, err)
	}
	before := viewStore(t, backup)
	inBackup := 0
	for _, j := range flowed {
		if _, ok := before.jobs[j.JobID]; ok {
			inBackup++
		}
	}
	t.Logf("backup of %d bytes, %d audit entries, %d jobs; %d of the %d jobs that flowed meanwhile are in it",
		fb.Bytes, fb.AuditEntries, len(before.jobs), inBackup, len(flowed))
	if len(before.results) != 2 || before.jobs[mine[0].JobID].Outcome != queue.Signed || before.jobs[cancelled.JobID].Outcome != queue.Cancelled ||
		before.jobs[mine[1].JobID].State != queue.Ready {
		t.Fatalf("the backup does not hold what was done before it: %d results, jobs %v", len(before.results), before.jobs)
	}

	// Restore: stop tekend, put the copy in place, start again.
	o.stop()
	if _, err := admin.Backup(ctx, o.socket, io.Discard); !errors.Is(err, admin.ErrNotRunning) {
		t.Errorf("backup of a stopped tekend: %v, want ErrNotRunning", err)
	}
	db := daemon.StorePath(o.cfg.DataDir)
	if err := os.Rename(db, db+".old"); err != nil {
		t.Fatal(err)
	}
	copyFile(t, backup, db, 0o600)
	siti.Card.Remove()
	o.start()

	// The Sync rule brings back every job that arrived after the backup.
	lost := 0
	for _, j := range flowed {
		if _, ok := before.jobs[j.JobID]; !ok {
			lost++
			awaitStored(t, c, j.JobID, 2)
		}
	}
	// Siti's letters are there to sign, and signing goes on. (The
	// other reader: the tekend before, in this same process, may still
	// hold its connection to the first.)
	if err := siti.Card.Insert(ctx, o.pcscd.VPCDAddr(1)); err != nil {
		t.Fatal(err)
	}
	k = tekentest.OpenKiosk(t, o.kioskURL)
	k.Await("Siti's two letters left", func(v kiosk.View) bool { return v.CanSign && len(v.Jobs) == 2 })
	if code, out := k.Sign([]string{mine[1].JobID}, siti.PIN); code != 200 {
		t.Fatalf("sign after the restore: %d %v", code, out)
	}
	got.await(t, mine[1].JobID, api.OutcomeSigned)

	// What the backup held is all there, the chain continued from it.
	after := filepath.Join(t.TempDir(), "after.db")
	if _, err := admin.BackupFile(ctx, o.socket, after, false); err != nil {
		t.Fatal(err)
	}
	now := viewStore(t, after)
	for id, j := range before.jobs {
		n, ok := now.jobs[id]
		if id == mine[1].JobID {
			j.State, j.Outcome = queue.Done, queue.Signed // since
		}
		if !ok || n.Outcome != j.Outcome || n.State != j.State {
			t.Errorf("job %s: %v %q after the restore, %v %q in the backup", id, n.State, n.Outcome, j.State, j.Outcome)
		}
	}
	for i, r := range before.results {
		n := now.results[i]
		if n.JobID != r.JobID || n.Outcome != r.Outcome || !bytes.Equal(n.Payload, r.Payload) {
			t.Errorf("result %d: %s %s after the restore, %s %s in the backup", i+1, n.JobID, n.Outcome, r.JobID, r.Outcome)
		}
	}
	if len(now.audit) <= len(before.audit) || !slices.EqualFunc(before.audit, now.audit[:len(before.audit)], bytes.Equal) {
		t.Errorf("the audit log after the restore does not go on from the backup's (%d, then %d entries)", len(before.audit), len(now.audit))
	}
	t.Logf("%d jobs that arrived after the backup came back through the Sync", lost)
}

// stored says whether the terminal has said it stored job id.
func (c *central) stored(id string) bool { return c.storedCount(id) > 0 }

func (c *central) storedCount(id string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, r := range c.seen[id] {
		if r.Status == api.ReceiptStored {
			n++
		}
	}
	return n
}

// awaitStored waits until the terminal has said n times that it stored job
// id: a job re-sent after a restore is stored once more.
func awaitStored(t *testing.T, c *central, id string, n int) {
	t.Helper()
	err := testenv.WaitFor(context.Background(), time.Minute, func() error {
		if got := c.storedCount(id); got < n {
			return fmt.Errorf("job %s stored %d times, want %d", id, got, n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// copyFile copies from to a new file to, of mode perm, and syncs it.
func copyFile(t *testing.T, from, to string, perm os.FileMode) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}
