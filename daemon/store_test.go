package daemon

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/daemon/kiosk"
	"github.com/tekenid/teken/device"
	"github.com/tekenid/teken/internal/demo"
	"github.com/tekenid/teken/internal/testenv"
	"github.com/tekenid/teken/queue"
)

// A full store is a part problem — /readyz and the status say
// "store: full: …", the kiosk err_store_full — and teken_store_full is 1,
// until there is room again. The size cap stands in for a full filesystem
// here: both are queue.ErrFull and Store.Full (queue's disk tests show the
// filesystem's side on a tmpfs).
func TestStoreFullIsReported(t *testing.T) {
	clock := &testClock{}
	s, err := queue.Open(filepath.Join(t.TempDir(), "q.db"), queue.Options{Logger: slog.New(slog.DiscardHandler),
		TerminalID: "kendari-setda-01", MaxSize: 1 << 20, SweepInterval: time.Hour, Retention: time.Minute, Now: clock.now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	d := &Daemon{store: s}
	ctx := context.Background()
	gauge := newStoreCollector(s)
	if p := d.storeProblem(ctx); p != nil || testutil.ToFloat64(gauge) != 0 {
		t.Fatalf("empty store: problem %v, teken_store_full %v", p, testutil.ToFloat64(gauge))
	}
	var stored []string
	for i := 0; ; i++ {
		id := fmt.Sprintf("job-%05d", i)
		_, _, err := s.Insert(ctx, queue.Job{ID: id, Envelope: make([]byte, 4096)})
		if errors.Is(err, queue.ErrFull) {
			break
		}
		if err != nil || i > 1000 {
			t.Fatalf("insert %d: %v", i, err)
		}
		stored = append(stored, id)
	}
	p := d.storeProblem(ctx)
	if p == nil || p.part != "store" || !strings.HasPrefix(p.detail, "full: size cap reached") || p.code != kiosk.CodeStoreFull {
		t.Fatalf("full store: problem %+v", p)
	}
	if got := p.String(); !strings.HasPrefix(got, "store: full: ") {
		t.Fatalf("/readyz line %q", got)
	}
	if n := testutil.ToFloat64(gauge); n != 1 {
		t.Fatalf("teken_store_full %v, want 1", n)
	}
	if err := testutil.CollectAndCompare(gauge, strings.NewReader(`
# HELP teken_store_full 1 while the job store refuses writes for lack of room: its size cap is reached or the filesystem is full. New jobs are not acknowledged meanwhile; they stay with the central system.
# TYPE teken_store_full gauge
teken_store_full 1
`)); err != nil {
		t.Fatal(err)
	}

	// Room again: the jobs end, their results are delivered and pruned,
	// and a new job is stored.
	for _, id := range stored {
		j, err := s.Transition(ctx, id, queue.Change{To: queue.Done, Outcome: queue.Rejected})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.MarkDelivered(ctx, j.ResultSeq); err != nil {
			t.Fatal(err)
		}
	}
	clock.advance(2 * time.Minute)
	if p, err := s.Prune(ctx); err != nil || p.Jobs != len(stored) {
		t.Fatalf("prune %+v %v", p, err)
	}
	if _, _, err := s.Insert(ctx, queue.Job{ID: "after"}); err != nil {
		t.Fatal(err)
	}
	if p := d.storeProblem(ctx); p != nil || testutil.ToFloat64(gauge) != 0 {
		t.Fatalf("store with room: problem %v, teken_store_full %v", p, testutil.ToFloat64(gauge))
	}
}

// storeRig is a Daemon with what the store's hooks reach — the metrics,
// the outbox, the status kick, the flow with a recorded page and a token
// in memory — around a real store in dir, wired as Open wires it
// (OnExpired is jobsExpired); the sweep period is an hour, so every expiry
// is the sweeper's timer's.
type storeRig struct {
	d      *Daemon
	store  *queue.Store
	pages  *pageRecorder
	intake *intake
	card   *fakeCard
	jobs   *api.Signer
	signer string
}

// newStoreRig builds the rig; tokens, when not nil, wraps the token.
func newStoreRig(t *testing.T, dir string, tokens func(*fakeCard) tokenLayer) *storeRig {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	r := &storeRig{pages: &pageRecorder{}, card: newFakeCard(t, device.PINPolicyOnce)}
	sum := sha256.Sum256(r.card.cert.Raw)
	r.signer = hex.EncodeToString(sum[:])
	var tl tokenLayer = fakeTokens{r.card}
	if tokens != nil {
		tl = tokens(r.card)
	}
	key, err := api.GenerateKey(api.AlgES256)
	if err != nil {
		t.Fatal(err)
	}
	if r.jobs, err = api.NewSigner(key); err != nil {
		t.Fatal(err)
	}
	keys, err := api.KeySet(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	verifier := &api.Verifier{Keys: keys, Terminal: "kendari-setda-01", Now: time.Now}
	d := &Daemon{log: log, now: time.Now, metrics: newMetrics(), statusKick: make(chan struct{}, 1)}
	d.outbox = newOutbox(nil, nil, log)
	comp := &completer{results: results{terminal: "kendari-setda-01", now: time.Now}, metrics: d.metrics, log: log,
		resultStored: d.outbox.notify, statusChanged: d.statusChanged}
	r.store, err = queue.Open(filepath.Join(dir, "q.db"), queue.Options{Logger: log, TerminalID: "kendari-setda-01",
		ExpiryPayload: comp.expiryPayload, OnExpired: d.jobsExpired, SweepInterval: time.Hour, MaxSize: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.store.Close(context.Background()) })
	d.store, comp.store, d.outbox.store = r.store, r.store, r.store
	d.flow = newFlow(flowDeps{
		store: r.store, tokens: tl, envelopes: envelopes{verifier},
		certs: certPolicy{now: time.Now, log: log}, seen: &certsSeen{}, complete: comp,
		signer: &docSigner{metrics: d.metrics, log: log, location: time.UTC}, metrics: d.metrics, batches: newBatches(),
		now: time.Now, log: log, lang: "id", maxBatch: 20,
		statusChanged: d.statusChanged, rearrive: func(string) {}, setLastError: func(string) {},
	})
	d.flow.pages = r.pages
	r.intake = &intake{store: r.store, verifier: verifier, complete: comp, metrics: d.metrics, log: log, now: time.Now,
		terminal: "kendari-setda-01", jobsChanged: d.flow.jobsChanged, statusChanged: d.statusChanged,
		setLastError: func(string) {}, resendAll: func() {}}
	r.d = d
	return r
}

// storeJob dispatches a one-document job to the rig's signer through
// intake, ending at expires.
func (r *storeRig) storeJob(t *testing.T, title string, expires time.Time) string {
	t.Helper()
	return r.storeJobWith(t, api.NewJobID(), title, []byte("isi "+title), expires)
}

func (r *storeRig) storeJobWith(t *testing.T, id, title string, doc []byte, expires time.Time) string {
	t.Helper()
	return r.storeDocument(t, id, title, api.NewDocument("surat", "surat.txt", "text/plain", doc), expires)
}

func (r *storeRig) storeDocument(t *testing.T, id, title string, doc api.Document, expires time.Time) string {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Second)
	j := &api.Job{V: api.Version, JobID: id, Terminal: "kendari-setda-01", IssuedAt: now, ExpiresAt: expires,
		Signer: api.Signatory{CertSHA256: r.signer}, Title: title, Number: "800/1/2026", Sender: "Setda",
		Documents: []api.Document{doc}}
	env, err := r.jobs.SignJob(j)
	if err != nil {
		t.Fatal(err)
	}
	if rc, err := r.intake.HandleJob(context.Background(), env); err != nil || rc.Status != api.ReceiptStored {
		t.Fatalf("intake: %+v %v", rc, err)
	}
	return j.JobID
}

// fillingTokens is the rig's token, which runs full before it signs: the
// disk fills while a letter is in signing.
type fillingTokens struct {
	fakeTokens
	beforeSign func()
}

func (f fillingTokens) Session(ctx context.Context, reader string, fn func(card) error) error {
	return f.fakeTokens.Session(ctx, reader, func(c card) error { return fn(fillingCard{c, f.beforeSign}) })
}

type fillingCard struct {
	card
	beforeSign func()
}

func (c fillingCard) Signer(slot device.Slot) (crypto.Signer, error) {
	if c.beforeSign != nil {
		c.beforeSign()
	}
	return c.card.Signer(slot)
}

// The disk fills while a letter is being signed, so neither its completion
// nor its put-back can be written: the official is told the store is full
// (err_store_full, not err_internal), the letter is at once listed again,
// and once there is room it is signed.
func TestSignOnFullDisk(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Unavailable(t, "mounting a tmpfs needs root")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=16777216,mode=0700"); err != nil {
		testenv.Unavailable(t, "mount tmpfs on %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	var r *storeRig
	filled := false
	var filler string
	r = newStoreRig(t, dir, func(c *fakeCard) tokenLayer {
		return fillingTokens{fakeTokens{c}, func() {
			if !filled {
				filled = true
				filler = testenv.FillFS(t, dir)
				fillRigStore(t, r.store)
			}
		}}
	})
	r.d.running.Store(true)
	ctx := context.Background()
	// The letter is a PDF of 256 KiB signed as pades, so its Result (the
	// signed PDF) needs a run of free pages that the jobs filling the
	// store use up; it has small neighbours (ids just after its own) and
	// two large jobs after them, so those jobs go to other leaves of the
	// file (see queue's disk tests).
	const id = "00000000-0000-4000-8000-000000000000"
	doc := api.NewDocument("surat", "surat.pdf", "application/pdf", bulkyPDF(256<<10))
	doc.Format = api.FormatPAdES
	r.storeDocument(t, id, "Surat Besar", doc, time.Now().Add(24*time.Hour))
	for _, n := range []string{"00000000-0000-4000-8000-000000000001", "00000000-0000-4000-8000-000000000002"} {
		if _, _, err := r.store.Insert(ctx, queue.Job{ID: n}); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []string{"zfill-0000", "zfill-0001"} {
		if _, _, err := r.store.Insert(ctx, queue.Job{ID: n, Envelope: make([]byte, 64<<10)}); err != nil {
			t.Fatal(err)
		}
	}
	r.d.flow.presence(ctx, device.Event{Kind: device.Arrived, Reader: "Reader 0"})
	if v := r.pages.last(); !v.CanSign || len(v.Jobs) != 1 {
		t.Fatalf("after the tap: %+v", v)
	}

	readLetters(t, ctx, r.d.flow, id)
	err := r.d.flow.Sign(ctx, []string{id}, []byte("123456"), false)
	if m, ok := storeMessage(err); err == nil || !ok || m.Code != kiosk.CodeStoreFull {
		t.Fatalf("sign on a full disk: %v, want one the official reads as %s", err, kiosk.CodeStoreFull)
	}
	if got := r.pages.last().Error; got == nil || got.Code != kiosk.CodeStoreFull {
		t.Errorf("the page says %+v, want %s", got, kiosk.CodeStoreFull)
	}
	if !r.store.Full() {
		t.Fatal("store not full")
	}
	if j, err := r.store.Get(ctx, id); err != nil || j.State != queue.Ready {
		t.Fatalf("letter after the failed signing: %v %v, want ready", j.State, err)
	}
	if st, _ := r.store.Stats(ctx); st.Jobs[queue.Signing] != 0 {
		t.Fatalf("stats %+v: a job left in signing", st.Jobs)
	}
	if v := r.pages.last(); len(v.Jobs) != 1 || v.Jobs[0].ID != id {
		t.Fatalf("page after the failed signing lists %+v, want the letter", v.Jobs)
	}
	if p := r.d.storeProblem(ctx); p == nil || p.code != kiosk.CodeStoreFull || !strings.HasPrefix(p.detail, "full: filesystem full") {
		t.Fatalf("store problem %+v", p)
	}
	// The result was not written. The put-back, a few hundred bytes, may
	// have found room; if not it is owed (queue's disk tests cover that)
	// and written with the next commit.
	before := strings.Join(auditOf(t, r.store, id), ",")
	if before != "job.received,job.ready,job.signing" && before != "job.received,job.ready,job.signing,job.abandoned" {
		t.Fatalf("audit of the letter %v", before)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if err := r.d.flow.Sign(ctx, []string{id}, []byte("123456"), false); err != nil {
		t.Fatalf("sign once there is room: %v", err)
	}
	res, err := r.store.Undelivered(ctx, 0, 0)
	if err != nil || len(res) != 1 || res[0].JobID != id || res[0].Outcome != queue.Signed {
		t.Fatalf("outbox %+v %v, want the letter signed", res, err)
	}
	want := "job.received,job.ready,job.signing,job.abandoned,job.signing,job.done"
	if got := auditOf(t, r.store, id); strings.Join(got, ",") != want {
		t.Fatalf("audit of the letter %v, want %s", got, want)
	}
}

// auditOf lists the events of job id in the audit log.
func auditOf(t *testing.T, s *queue.Store, id string) []string {
	t.Helper()
	var b bytes.Buffer
	if _, err := s.ExportAudit(context.Background(), &b, 0); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range bytes.Split(bytes.TrimSpace(b.Bytes()), []byte("\n")) {
		var e struct {
			JobID string `json:"job_id"`
			Event string `json:"event"`
		}
		if err := json.Unmarshal(line, &e); err != nil {
			t.Fatal(err)
		}
		if e.JobID == id {
			out = append(out, e.Event)
		}
	}
	return out
}

// fillRigStore inserts ever smaller jobs until each size is refused, so the
// free pages in the file are used up too.
func fillRigStore(t *testing.T, s *queue.Store) {
	t.Helper()
	n := 2
	// Down to records with no envelope at all: a change of state rewrites
	// only a job's small record, so the last free pages must go too.
	for _, size := range []int{64 << 10, 4 << 10, 256, 0} {
		for ; ; n++ {
			_, _, err := s.Insert(context.Background(), queue.Job{ID: fmt.Sprintf("zfill-%04d", n), Envelope: make([]byte, size)})
			if errors.Is(err, queue.ErrFull) {
				break
			}
			if err != nil || n > 2000 {
				t.Fatalf("insert %d on a full disk: %v", n, err)
			}
		}
	}
}

// bulkyPDF is a one-page PDF of about size bytes, most of them comment
// lines in the page's content.
func bulkyPDF(size int) []byte {
	content := "BT /F1 12 Tf 72 770 Td (Surat besar) Tj ET\n" + strings.Repeat("% isi surat yang panjang sekali\n", size/32)
	objects := []string{
		"<< /Type /Catalog /Pages 2 0 R >>",
		"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
		"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
		"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
		fmt.Sprintf("<< /Length %d >>\nstream\n%s\nendstream", len(content), content),
	}
	return demo.PDFFile(objects...)
}
