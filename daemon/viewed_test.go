package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/daemon/kiosk"
	"github.com/tekenid/teken/device"
	"github.com/tekenid/teken/queue"
)

// readLetters opens every available document of the letters ids as the
// page lists them, through Document as the kiosk server does for the
// page's GET /api/documents/{job}/{index}: the official has seen them, and
// the flow may sign them in this token session.
func readLetters(t testing.TB, ctx context.Context, f *flow, ids ...string) {
	t.Helper()
	v := f.view(ctx)
	for _, id := range ids {
		i := slices.IndexFunc(v.Jobs, func(j kiosk.Job) bool { return j.ID == id })
		if i < 0 {
			t.Fatalf("letter %s is not on the page", id)
		}
		for _, d := range v.Jobs[i].Documents {
			if !d.Available {
				continue
			}
			if _, _, err := f.Document(ctx, id, d.Index); err != nil {
				t.Fatalf("open document %d of %s: %v", d.Index, id, err)
			}
		}
	}
}

// read opens the letters' documents as the official does before signing.
func (r *flowRig) read(t testing.TB, ids ...string) { readLetters(t, r.ctx, r.flow, ids...) }

// offer dispatches a job to the rig's signer, as envelope builds it and
// then changed by adjust, and returns its id and receipt.
func (r *flowRig) offer(t *testing.T, adjust func(*api.Job)) (string, api.Receipt) {
	t.Helper()
	now := r.clock.now().UTC().Truncate(time.Second)
	j := &api.Job{V: api.Version, JobID: api.NewJobID(), Terminal: "kendari-setda-01", IssuedAt: now, ExpiresAt: now.Add(24 * time.Hour),
		Signer: api.Signatory{CertSHA256: r.signer}, Title: "Surat Edaran", Number: "800/1/2026", Sender: "Setda",
		Documents: []api.Document{api.NewDocument("surat", "surat.txt", "text/plain", []byte("isi surat"))}}
	adjust(j)
	env, err := r.jobs.SignJob(j)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := r.intake.HandleJob(r.ctx, env)
	if err != nil {
		t.Fatalf("intake: %v", err)
	}
	return j.JobID, rc
}

// count is how many views the page was shown.
func (p *pageRecorder) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.views)
}

// tap puts the rig's token on the reader.
func (r *flowRig) tap() {
	r.flow.presence(r.ctx, device.Event{Kind: device.Arrived, Reader: "Reader 0"})
}

// notViewed reports whether err is the refusal of a letter not yet seen,
// naming title.
func notViewed(err error, title string) bool {
	var ue *kiosk.UserError
	return errors.As(err, &ue) && ue.Code == kiosk.CodeNotViewed && ue.Params["title"] == title
}

// The official must open every document of a letter before signing it; a
// refusal spends no PIN try, and the page's list says which documents were
// opened.
func TestSignNeedsEveryDocumentViewed(t *testing.T) {
	r := newFlowRig(t, device.PINPolicyOnce)
	id, _ := r.offer(t, func(j *api.Job) {
		j.Title = "Undangan Rapat"
		j.Documents = append(j.Documents, api.NewDocument("lampiran", "lampiran.txt", "text/plain", []byte("lampiran")))
	})
	r.tap()
	docs := func() []kiosk.Document {
		t.Helper()
		v := r.pages.last()
		if len(v.Jobs) != 1 {
			t.Fatalf("page lists %d letters", len(v.Jobs))
		}
		return v.Jobs[0].Documents
	}
	if d := docs(); d[0].Viewed || d[1].Viewed || !d[0].Renderable || !d[1].Renderable {
		t.Fatalf("documents before opening: %+v", d)
	}

	sign := func() error { return r.flow.Sign(r.ctx, []string{id}, []byte("123456"), false) }
	if err := sign(); !notViewed(err, "Undangan Rapat") {
		t.Fatalf("sign unseen: %v, want %s with the title", err, kiosk.CodeNotViewed)
	}
	if _, _, err := r.flow.Document(r.ctx, id, 0); err != nil {
		t.Fatal(err)
	}
	if d := docs(); !d[0].Viewed || d[1].Viewed {
		t.Fatalf("after opening the first: %+v", d)
	}
	if err := sign(); !notViewed(err, "Undangan Rapat") {
		t.Fatalf("sign half seen: %v, want %s", err, kiosk.CodeNotViewed)
	}
	if r.card.verifies != 0 || r.card.tries != 3 {
		t.Fatalf("PIN verified %d times, %d tries left: a refusal spent a try", r.card.verifies, r.card.tries)
	}
	if n := r.results(t); len(n) != 0 {
		t.Fatalf("%d results after refusals", len(n))
	}
	if j, _ := r.store.Get(r.ctx, id); j.State != queue.Ready {
		t.Fatalf("job %s after refusals, want ready", j.State)
	}
	if v := r.pages.last(); v.State != kiosk.StateToken || v.Error != nil {
		t.Fatalf("page after refusals: state %s, error %+v", v.State, v.Error)
	}

	// Opening a document again changes nothing; the last one opens the
	// letter for signing.
	n := r.pages.count()
	if _, _, err := r.flow.Document(r.ctx, id, 0); err != nil {
		t.Fatal(err)
	}
	if r.pages.count() != n {
		t.Error("a document opened again published the page")
	}
	if _, _, err := r.flow.Document(r.ctx, id, 1); err != nil {
		t.Fatal(err)
	}
	if d := docs(); !d[0].Viewed || !d[1].Viewed {
		t.Fatalf("after opening both: %+v", d)
	}
	if err := sign(); err != nil {
		t.Fatalf("sign after opening every document: %v", err)
	}
	if r.card.verifies != 1 {
		t.Errorf("PIN verified %d times, want 1", r.card.verifies)
	}
}

// In a batch, the first letter not seen is named and nothing is signed.
func TestBatchWithOneLetterUnseenSignsNothing(t *testing.T) {
	r := newFlowRig(t, device.PINPolicyOnce)
	seen, _ := r.offer(t, func(j *api.Job) { j.Title = "Dibaca" })
	unseen, _ := r.offer(t, func(j *api.Job) { j.Title = "Belum dibaca" })
	r.tap()
	r.read(t, seen)
	if err := r.flow.Sign(r.ctx, []string{seen, unseen}, []byte("123456"), false); !notViewed(err, "Belum dibaca") {
		t.Fatalf("sign: %v, want %s naming the unseen letter", err, kiosk.CodeNotViewed)
	}
	if r.card.verifies != 0 || len(r.results(t)) != 0 {
		t.Fatalf("verifies %d, results %d: want neither", r.card.verifies, len(r.results(t)))
	}
}

// What was opened counts for the token session it was opened in: a token
// that leaves, or another that arrives, starts with nothing seen.
func TestViewedResetsWithTheTokenSession(t *testing.T) {
	for _, c := range []struct {
		name string
		next func(r *flowRig)
	}{
		{"the token leaves and comes back", func(r *flowRig) {
			r.flow.presence(r.ctx, device.Event{Kind: device.Left, Reader: "Reader 0"})
			r.tap()
		}},
		{"a token arrives on another reader", func(r *flowRig) {
			r.flow.presence(r.ctx, device.Event{Kind: device.Arrived, Reader: "Reader 1"})
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newFlowRig(t, device.PINPolicyOnce)
			id := r.storeJob(t, r.signer, 1)
			r.tap()
			r.read(t, id)
			c.next(r)
			if v := r.pages.last(); !v.CanSign || len(v.Jobs) != 1 || v.Jobs[0].Documents[0].Viewed {
				t.Fatalf("page in the new session: %+v", v)
			}
			if err := r.flow.Sign(r.ctx, []string{id}, []byte("123456"), false); !notViewed(err, "Surat Edaran") {
				t.Fatalf("sign in the new session: %v, want %s", err, kiosk.CodeNotViewed)
			}
			r.read(t, id)
			if err := r.flow.Sign(r.ctx, []string{id}, []byte("123456"), false); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// leavingStore takes the token away while a document is being read, as a
// removal during the fetch does.
type leavingStore struct {
	flowStore
	during func()
}

func (s leavingStore) Get(ctx context.Context, id string) (queue.Job, error) {
	s.during()
	return s.flowStore.Get(ctx, id)
}

// A document fetched while its token left and came back is counted for
// neither session.
func TestDocumentServedAcrossSessionsCountsForNone(t *testing.T) {
	r := newFlowRig(t, device.PINPolicyOnce)
	id := r.storeJob(t, r.signer, 1)
	r.tap()
	store := r.flow.store
	r.flow.store = leavingStore{flowStore: store, during: func() {
		r.flow.presence(r.ctx, device.Event{Kind: device.Left, Reader: "Reader 0"})
		r.tap()
	}}
	if _, _, err := r.flow.Document(r.ctx, id, 0); err != nil {
		t.Fatal(err)
	}
	r.flow.store = store
	if err := r.flow.Sign(r.ctx, []string{id}, []byte("123456"), false); !notViewed(err, "Surat Edaran") {
		t.Fatalf("sign: %v, want %s", err, kiosk.CodeNotViewed)
	}
}

// A document that is not served does not count: another signer's, or one
// that does not exist.
func TestDocumentsNotServedDoNotCount(t *testing.T) {
	r := newFlowRig(t, device.PINPolicyOnce)
	id := r.storeJob(t, r.signer, 1)
	other := r.storeJob(t, "someone-else", 1)
	r.tap()
	if _, _, err := r.flow.Document(r.ctx, other, 0); err == nil {
		t.Fatal("another signer's document served")
	}
	if _, _, err := r.flow.Document(r.ctx, id, 1); err == nil {
		t.Fatal("a document the letter does not have served")
	}
	if err := r.flow.Sign(r.ctx, []string{id}, []byte("123456"), false); !notViewed(err, "Surat Edaran") {
		t.Fatalf("sign: %v, want %s", err, kiosk.CodeNotViewed)
	}
}

// The letter list shows a job's further fields in the job's order.
func TestLetterFieldsShown(t *testing.T) {
	r := newFlowRig(t, device.PINPolicyOnce)
	fields := []api.Field{{Label: "Sifat", Value: "Segera"}, {Label: "Lampiran", Value: "1 berkas"}, {Label: "Klasifikasi", Value: "Biasa"}}
	with, rc := r.offer(t, func(j *api.Job) { j.Fields = fields })
	if rc.Status != api.ReceiptStored {
		t.Fatalf("receipt %+v", rc)
	}
	without, _ := r.offer(t, func(*api.Job) {})
	r.tap()
	v := r.pages.last()
	byID := map[string]kiosk.Job{}
	for _, j := range v.Jobs {
		byID[j.ID] = j
	}
	want := []kiosk.Field{{Label: "Sifat", Value: "Segera"}, {Label: "Lampiran", Value: "1 berkas"}, {Label: "Klasifikasi", Value: "Biasa"}}
	if got := byID[with].Fields; !slices.Equal(got, want) {
		t.Errorf("fields %+v, want %+v", got, want)
	}
	if got := byID[without].Fields; got == nil || len(got) != 0 {
		t.Errorf("fields of a job without any: %#v, want an empty list", got)
	}
}

// A job stored before fields were kept shows none, and its list entry is
// otherwise whole.
func TestJobStoredWithoutFieldsShowsNone(t *testing.T) {
	meta := `{"title":"Surat Lama","number":"1/2025","issued_at":"2025-01-01T00:00:00Z","docs":[{"id":"surat","media_type":"application/pdf","size":3,"format":"cms","available":true}]}`
	v := jobView(queue.Job{ID: "01JGZ8Q4T5V6W7X8Y9Z0ABCDEF", Meta: json.RawMessage(meta), Digests: make([]queue.Digest, 1)}, nil)
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if v.Title != "Surat Lama" || len(v.Documents) != 1 || !v.Documents[0].Renderable || v.Documents[0].Viewed ||
		!strings.Contains(string(b), `"fields":[]`) {
		t.Fatalf("view of a job stored before fields: %s", b)
	}
}

// The letters are listed by due date, the most urgent first.
func TestLettersListedByDueDate(t *testing.T) {
	r := newFlowRig(t, device.PINPolicyOnce)
	due := func(d time.Duration) func(*api.Job) {
		return func(j *api.Job) { j.ExpiresAt = j.IssuedAt.Add(d) }
	}
	late, _ := r.offer(t, due(72*time.Hour))
	soon, _ := r.offer(t, due(2*time.Hour))
	r.clock.advance(time.Minute)
	soonToo, _ := r.offer(t, due(2*time.Hour+time.Minute)) // same due date, received later
	middle, _ := r.offer(t, due(24*time.Hour))
	r.tap()
	var got []string
	for _, j := range r.pages.last().Jobs {
		got = append(got, j.ID)
	}
	if want := []string{soon, soonToo, middle, late}; !slices.Equal(got, want) {
		t.Fatalf("letters listed %v, want %v", got, want)
	}
}

func TestByDueDate(t *testing.T) {
	at := func(h int) time.Time { return time.Date(2026, 1, 5, h, 0, 0, 0, time.UTC) }
	for _, c := range []struct {
		name string
		a, b queue.Job
		want int
	}{
		{"earlier due date first", queue.Job{ID: "B", ExpiresAt: at(1), ReceivedAt: at(9)}, queue.Job{ID: "A", ExpiresAt: at(2), ReceivedAt: at(0)}, -1},
		{"same due date: received first", queue.Job{ID: "B", ExpiresAt: at(5), ReceivedAt: at(1)}, queue.Job{ID: "A", ExpiresAt: at(5), ReceivedAt: at(2)}, -1},
		{"same due date and arrival: by id", queue.Job{ID: "A", ExpiresAt: at(5), ReceivedAt: at(1)}, queue.Job{ID: "B", ExpiresAt: at(5), ReceivedAt: at(1)}, -1},
		{"the same instant in another zone is the same", queue.Job{ID: "A", ExpiresAt: at(5).In(time.FixedZone("WITA", 8*3600))}, queue.Job{ID: "B", ExpiresAt: at(5)}, -1},
		{"no due date last", queue.Job{ID: "A"}, queue.Job{ID: "B", ExpiresAt: at(23)}, 1},
		{"equal", queue.Job{ID: "A", ExpiresAt: at(5)}, queue.Job{ID: "A", ExpiresAt: at(5)}, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := byDueDate(c.a, c.b); got != c.want {
				t.Errorf("byDueDate = %d, want %d", got, c.want)
			}
			if got := byDueDate(c.b, c.a); got != -c.want {
				t.Errorf("byDueDate reversed = %d, want %d", got, -c.want)
			}
		})
	}
}

// A token with no certificate in slot 9c (new, or enrolled half-way) is
// shown as such; it neither crashes tekend nor offers letters.
func TestTokenWithoutCertificate(t *testing.T) {
	r := newFlowRig(t, device.PINPolicyOnce)
	r.storeJob(t, r.signer, 1)
	r.card.cert = nil
	r.tap()
	v := r.pages.last()
	if v.Error == nil || v.Error.Code != kiosk.CodeSlotEmpty || v.CanSign || len(v.Jobs) != 0 {
		t.Fatalf("page for a token without a certificate: %+v", v)
	}
}
