package daemon

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/daemon/kiosk"
	"github.com/tekenid/teken/device"
	"github.com/tekenid/teken/queue"
)

// The flow's view of the parts around it: small interfaces declared here,
// so the flow is tested with fakes and knows nothing of how the parts are
// built.
type (
	// flowStore is the part of the job store the official's flow uses.
	flowStore interface {
		BySignerHeads(ctx context.Context, signer string, limit int) ([]queue.Job, error)
		Get(ctx context.Context, id string) (queue.Job, error)
		Head(ctx context.Context, id string) (queue.Job, error)
		Transition(ctx context.Context, id string, c queue.Change) (queue.Job, error)
		AppendAudit(ctx context.Context, e queue.AuditEntry) (queue.AuditEntry, error)
	}
	// tokenLayer is the part of the device layer the flow uses.
	tokenLayer interface {
		// Info reads a token without its PIN.
		Info(ctx context.Context, reader string) (device.Info, error)
		// Session holds the token exclusively while fn runs.
		Session(ctx context.Context, reader string, fn func(card) error) error
	}
	// card is one exclusive session with a token.
	card interface {
		VerifyPIN(pin []byte, lastAttemptConfirmed bool) error
		SlotPINPolicy(slot device.Slot) (device.PINPolicy, error)
		Signer(slot device.Slot) (crypto.Signer, error)
	}
	// pagePublisher shows a view on the kiosk page (kiosk.Server).
	pagePublisher interface {
		Publish(kiosk.View)
	}
)

var (
	_ flowStore     = (*queue.Store)(nil)
	_ tokenLayer    = deviceTokens{}
	_ card          = (*device.Session)(nil)
	_ pagePublisher = (*kiosk.Server)(nil)
)

// deviceTokens adapts *device.Tokens to tokenLayer.
type deviceTokens struct{ *device.Tokens }

// Session holds the token exclusively while fn runs.
func (t deviceTokens) Session(ctx context.Context, reader string, fn func(card) error) error {
	return t.Tokens.Session(ctx, reader, func(s *device.Session) error { return fn(s) })
}

// flowDeps are what a flow is built from.
type flowDeps struct {
	store     flowStore
	tokens    tokenLayer
	envelopes envelopes
	certs     certPolicy
	tokenSet  tokenPolicy // whether IT has set the token up
	tapCheck  *tapCheck   // revocation at each tap; nil when off
	seen      *certsSeen
	complete  *completer
	signer    *docSigner
	metrics   *metrics
	batches   *batches
	now       func() time.Time
	log       *slog.Logger
	lang      string
	maxBatch  int
	// statusChanged asks the main loop to publish the status; rearrive
	// hands the main loop a token that arrived while an action ran;
	// setLastError records a failure for the status and /readyz.
	statusChanged func()
	rearrive      func(reader string)
	setLastError  func(msg string)
}

// flow is the official's side of the terminal: it runs the page state
// machine (page) against the token, the store and the signature formats.
// It implements kiosk.Controller; pages, the kiosk server it publishes to,
// is set once before anything runs, since the server is built with the
// flow as its controller.
type flow struct {
	flowDeps
	pages pagePublisher

	// checks are the revocation checks in flight (checkRevocation).
	checks sync.WaitGroup

	mu sync.Mutex
	p  page
	// viewed are the documents served to the page (Document) in the
	// present token session: emptied when a token arrives or the present
	// one leaves. A letter is signed only once each of its documents the
	// page can show is in it (checkViewed).
	viewed map[docRef]bool

	// refresh coalesces the list refreshes of jobsChanged.
	refresh listRefresh
}

// docRef names one document of a job.
type docRef struct {
	job   string
	index int
}

func newFlow(deps flowDeps) *flow {
	return &flow{flowDeps: deps, p: newPage(deps.lang)}
}

var _ kiosk.Controller = (*flow)(nil)

// presence handles one token event from the device layer.
func (f *flow) presence(ctx context.Context, ev device.Event) {
	switch ev.Kind {
	case device.Arrived:
		f.arrived(ctx, ev.Reader)
	case device.Left:
		f.left(ev.Reader)
	}
}

func (f *flow) arrived(ctx context.Context, reader string) {
	f.mu.Lock()
	gen, ok := f.p.arrive(reader)
	if ok {
		f.viewed = nil // a new token session
	}
	f.mu.Unlock()
	if !ok {
		return
	}
	f.publish(ctx)

	infoStart := time.Now()
	info, err := f.tokens.Info(ctx, reader)
	f.metrics.tokenTime(infoStart)
	if err == nil && info.SignCert == nil {
		// A token with no certificate in 9c (a new one, or one whose
		// enrolment stopped half-way) has nothing to sign with.
		err = fmt.Errorf("token in %q: no certificate in slot 9c: %w", reader, device.ErrSlotEmpty)
	}
	r := tokenRead{info: info, err: err}
	var verdict tokenVerdict
	var toCheck []*x509.Certificate // the chain the tap's revocation check asks about
	if err == nil {
		// A token IT has not set up is refused whatever its certificate:
		// that is what IT must fix first.
		verdict = f.tokenSet.check(ctx, reader, info)
		r.certProblem = verdict.refused
		if r.certProblem == nil {
			r.certProblem = f.certs.check(info.SignCert)
		}
		if r.certProblem == nil && f.tapCheck != nil {
			toCheck = f.tapCheck.chainToCheck(info.SignCert)
			r.checking = toCheck != nil
		}
	}
	f.mu.Lock()
	changed := f.p.read(gen, reader, r)
	signer := f.p.signer
	f.mu.Unlock()
	if !changed {
		return
	}
	if err != nil {
		f.log.Info("token not readable", "reader", reader, "err", err)
	} else {
		f.seen.add(signer, info.SignCert.NotAfter, f.now())
		f.log.Info("token present", "reader", reader, "serial", info.Serial, "signer", signer)
		verdict.report(f.log, f.setLastError, reader, info.Serial)
	}
	f.publish(ctx)
	f.statusChanged()
	if r.checking {
		f.checks.Go(func() { f.checkRevocation(ctx, gen, reader, toCheck) })
	}
}

func (f *flow) left(reader string) {
	f.mu.Lock()
	changed := f.p.leave(reader)
	if changed {
		f.viewed = nil // the token session is over
	}
	f.mu.Unlock()
	if !changed {
		return
	}
	f.publish(context.Background())
	f.statusChanged()
}

// tokenFacts are the present token's facts for metrics: presence, PIN
// retries left (-1 when unknown) and its certificate's expiry.
func (f *flow) tokenFacts() (present bool, retries int, notAfter time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.p.reader == "" {
		return false, -1, time.Time{}
	}
	if f.p.cert != nil {
		notAfter = f.p.cert.NotAfter
	}
	return true, f.p.tries, notAfter
}

// jobsChanged refreshes the page when a job of the present signer arrived
// or ended.
func (f *flow) jobsChanged(signer string) {
	f.mu.Lock()
	mine := signer != "" && signer == f.p.signer
	f.mu.Unlock()
	if mine {
		f.refresh.ask(func() { f.publish(context.Background()) })
	}
}

// partsChanged shows what the official must know about the terminal's
// parts now (kioskParts: the probes of /readyz). The main loop calls it
// every status tick, so a part that fails without a token event (pcscd
// dies, the broker goes away) reaches the page within a tick; it publishes
// only when what the page says changed.
func (f *flow) partsChanged(n partsNotice) {
	f.mu.Lock()
	changed := f.p.setParts(n)
	f.mu.Unlock()
	if changed {
		f.publish(context.Background())
	}
}

// publish sends the current view to the page.
func (f *flow) publish(ctx context.Context) {
	f.pages.Publish(f.view(ctx))
}

func (f *flow) view(ctx context.Context) kiosk.View {
	f.mu.Lock()
	v := f.p.view(f.maxBatch)
	signer := f.p.signer
	viewed := maps.Clone(f.viewed)
	f.mu.Unlock()
	// The signing screen shows the batch's progress only: every step of
	// a batch publishes a view, and reading the signer's letters for
	// each cost a week's backlog 60 ms a letter.
	if v.Signer == nil || v.State == kiosk.StateSigning {
		return v
	}
	jobs, err := f.readyJobs(ctx, signer)
	if err != nil {
		f.log.Error("list jobs for signer", "err", err)
		v.Error = &kiosk.Message{Code: kiosk.CodeInternal}
		return v
	}
	v.JobsTotal = len(jobs)
	for _, j := range jobs[:min(len(jobs), pageListLimit)] {
		v.Jobs = append(v.Jobs, jobView(j, viewed))
	}
	return v
}

// metaOf reads what intake kept beside a job; an empty title is the worst
// case.
func metaOf(j queue.Job) jobMeta {
	var m jobMeta
	_ = json.Unmarshal(j.Meta, &m)
	return m
}

// mustView reports whether the official must have seen a document before
// signing it: the job carries its bytes and the page can show them.
// Others are signed unseen only where configuration allows them
// (dispatcher.allow_hash_only, signing.allow_unrenderable_documents).
func (d docMeta) mustView() bool { return d.Available && kiosk.Renderable(d.MediaType) }

// jobView is a job as the page lists it; viewed are the documents served
// in the present token session.
func jobView(j queue.Job, viewed map[docRef]bool) kiosk.Job {
	m := metaOf(j)
	v := kiosk.Job{ID: j.ID, Title: m.Title, Number: m.Number, Sender: m.Sender, ReceivedAt: j.ReceivedAt, ExpiresAt: j.ExpiresAt,
		Fields: make([]kiosk.Field, 0, len(m.Fields))}
	for _, fd := range m.Fields {
		v.Fields = append(v.Fields, kiosk.Field{Label: fd.Label, Value: fd.Value})
	}
	for i, d := range m.Docs {
		var sum string
		if i < len(j.Digests) {
			sum = hex.EncodeToString(j.Digests[i][:])
		}
		v.Documents = append(v.Documents, kiosk.Document{
			Index: i, Name: d.Name, MediaType: d.MediaType, SHA256: sum, Size: d.Size, Available: d.Available,
			Renderable: kiosk.Renderable(d.MediaType), Viewed: viewed[docRef{j.ID, i}],
			Format: string(d.Format), Block: d.Block,
		})
	}
	return v
}

// SetLanguage switches the page's language.
func (f *flow) SetLanguage(lang string) {
	f.mu.Lock()
	f.p.lang = lang
	f.mu.Unlock()
	f.publish(context.Background())
}

// Dismiss leaves the done screen for the list, or idle if the token left.
func (f *flow) Dismiss(ctx context.Context) {
	f.mu.Lock()
	f.p.dismiss()
	f.mu.Unlock()
	f.publish(ctx)
}

// Document returns a document of a job waiting for the present signer, and
// counts it as viewed in the present token session: the page's list then
// says so. A token that left or was replaced meanwhile gets the bytes
// counted for nobody.
func (f *flow) Document(ctx context.Context, jobID string, index int) (string, []byte, error) {
	f.mu.Lock()
	signer, gen := f.p.signer, f.p.gen
	f.mu.Unlock()
	j, err := f.store.Get(ctx, jobID)
	if err != nil {
		return "", nil, err
	}
	if signer == "" || j.Signer != signer {
		return "", nil, fmt.Errorf("job %s is not for the present signer", jobID)
	}
	job, err := f.envelopes.open(j)
	if err != nil {
		return "", nil, err
	}
	if index >= len(job.Documents) || len(job.Documents[index].Content) == 0 {
		return "", nil, fmt.Errorf("job %s has no document %d", jobID, index)
	}
	doc := job.Documents[index]
	f.mu.Lock()
	first := f.p.gen == gen && f.p.signer == signer && !f.viewed[docRef{jobID, index}]
	if first {
		if f.viewed == nil {
			f.viewed = make(map[docRef]bool)
		}
		f.viewed[docRef{jobID, index}] = true
	}
	f.mu.Unlock()
	if first {
		f.publish(context.WithoutCancel(ctx))
	}
	return doc.MediaType, doc.Content, nil
}

// checkViewed refuses a batch with a letter whose documents the official
// has not all seen in this token session (docMeta.mustView): the page must
// have fetched each of them. It runs before the card is opened, so no PIN
// try is spent on the refusal.
func (f *flow) checkViewed(jobs []queue.Job) error {
	metas := make([]jobMeta, len(jobs))
	for i, j := range jobs {
		metas[i] = metaOf(j)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, j := range jobs {
		for k, d := range metas[i].Docs {
			if d.mustView() && !f.viewed[docRef{j.ID, k}] {
				f.log.Info("signing refused: a document was not viewed", "job", j.ID, "document", k)
				return kiosk.NewUserError(kiosk.CodeNotViewed, fmt.Errorf("job %s: document %d not viewed in this token session", j.ID, k),
					map[string]string{"title": metas[i].Title})
			}
		}
	}
	return nil
}

// claim marks the flow busy for one signing by the present signer.
func (f *flow) claim() (claimed, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.p.claim(true)
}

// claimReject is claim for a rejection, which signs nothing and so does
// not wait for the certificate's revocation status.
func (f *flow) claimReject() (claimed, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.p.claim(false)
}

// release ends the action in flight; a token that arrived meanwhile is
// read by the main loop, not on the request that just finished.
func (f *flow) release() {
	f.mu.Lock()
	pending := f.p.release()
	f.mu.Unlock()
	f.publish(context.Background())
	if pending != "" {
		f.rearrive(pending)
	}
}

// Reject ends one job of the present signer with outcome rejected.
func (f *flow) Reject(ctx context.Context, jobID, reason string) error {
	who, err := f.claimReject()
	if err != nil {
		return err
	}
	defer f.release()
	j, err := f.store.Head(ctx, jobID)
	if err != nil || j.Signer != who.signer || j.State != queue.Ready {
		return kiosk.NewUserError(kiosk.CodeJobGone, err, nil)
	}
	if err := f.complete.finish(ctx, j, queue.Rejected, api.ReasonRejectedBySigner, reason); err != nil {
		if m, ok := storeMessage(err); ok {
			return &kiosk.UserError{Message: m, Err: err} // the official can do nothing but call IT
		}
		return err
	}
	f.log.Info("job rejected", "job", j.ID, "signer", who.signer)
	f.mu.Lock()
	f.p.rejected()
	f.mu.Unlock()
	return nil
}

// selectJobs checks that every id names a job waiting for signer.
func (f *flow) selectJobs(ctx context.Context, ids []string, signer string) ([]queue.Job, error) {
	if len(ids) > f.maxBatch {
		return nil, kiosk.NewUserError(kiosk.CodeBatchTooLarge, nil, map[string]string{"n": strconv.Itoa(f.maxBatch)})
	}
	ready, err := f.readyJobs(ctx, signer)
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	var out []queue.Job
	for _, id := range ids {
		i := slices.IndexFunc(ready, func(j queue.Job) bool { return j.ID == id })
		if i < 0 {
			return nil, kiosk.NewUserError(kiosk.CodeJobGone, fmt.Errorf("job %s not waiting for this signer", id), nil)
		}
		if !slices.ContainsFunc(out, func(j queue.Job) bool { return j.ID == id }) {
			out = append(out, ready[i])
		}
	}
	return out, nil
}
