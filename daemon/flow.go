package daemon

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/tekenid/teken/daemon/kiosk"
	"github.com/tekenid/teken/device"
	"github.com/tekenid/teken/queue"
)

// flow is the official's side of the terminal: which token is present, what
// the page shows, and signing and rejecting. It implements kiosk.Controller.
type flow struct {
	d *Daemon

	mu       sync.Mutex
	lang     string
	state    kiosk.State
	reader   string            // reader of the present token; "" when none
	cert     *x509.Certificate // its 9c certificate
	signer   string            // SHA-256 of cert, lowercase hex
	problem  *kiosk.Message    // why this token cannot sign, if it cannot
	tries    int               // PIN retries left, -1 when unknown
	progress *kiosk.Progress
	outcome  *kiosk.Outcome
	lastErr  *kiosk.Message
	notice   *kiosk.Message
	busy     bool   // a batch or a rejection is in flight
	pending  string // a reader whose token arrived while busy
	// gen counts token arrivals, so a slow certificate read for a token
	// that has left since cannot overwrite the newer state.
	gen uint64
}

func newFlow(d *Daemon) *flow {
	return &flow{d: d, lang: d.cfg.Kiosk.Language, state: kiosk.StateIdle, tries: -1}
}

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
	if f.busy {
		// Another token arrived while a batch runs: it is read once the
		// batch is over.
		f.pending = reader
		f.mu.Unlock()
		return
	}
	f.gen++
	gen := f.gen
	f.reader, f.cert, f.signer, f.problem, f.tries = reader, nil, "", nil, -1
	f.state, f.outcome, f.lastErr, f.notice, f.progress = kiosk.StateReading, nil, nil, nil, nil
	f.mu.Unlock()
	f.publish(ctx)

	infoStart := time.Now()
	info, err := f.d.tokens.Info(ctx, reader)
	f.d.metrics.tokenTime(infoStart)
	f.mu.Lock()
	if gen != f.gen || f.reader != reader {
		f.mu.Unlock()
		return
	}
	f.state = kiosk.StateToken
	if err != nil {
		msg := tokenMessage(err)
		f.problem = &msg
		f.d.log.Info("token not readable", "reader", reader, "err", err)
	} else {
		f.cert = info.SignCert
		f.tries = info.PINRetries
		sum := sha256.Sum256(info.SignCert.Raw)
		f.signer = hex.EncodeToString(sum[:])
		f.problem = f.d.checkCertificate(info.SignCert)
		if f.problem == nil && info.PINRetries == 0 {
			f.problem = &kiosk.Message{Code: kiosk.CodePINBlocked}
		}
		f.d.certsSeen.add(f.signer, info.SignCert.NotAfter, f.d.now())
		f.d.log.Info("token present", "reader", reader, "serial", info.Serial, "signer", f.signer)
	}
	f.mu.Unlock()
	f.publish(ctx)
	f.d.statusChanged()
}

func (f *flow) left(reader string) {
	f.mu.Lock()
	if reader == f.pending {
		f.pending = ""
	}
	if reader != f.reader {
		f.mu.Unlock()
		return
	}
	f.gen++
	busy := f.busy
	f.reader = ""
	// The next official starts in the terminal's own language.
	f.lang = f.d.cfg.Kiosk.Language
	if !busy {
		// While a batch runs, the signing itself notices the removal and
		// reports it; the page changes when it returns.
		f.resetLocked()
	}
	f.mu.Unlock()
	f.publish(context.Background())
	f.d.statusChanged()
}

func (f *flow) resetLocked() {
	f.state, f.cert, f.signer, f.problem, f.tries = kiosk.StateIdle, nil, "", nil, -1
	f.progress, f.outcome, f.lastErr, f.notice = nil, nil, nil, nil
}

// tokenFacts are the present token's facts for metrics: presence, PIN
// retries left (-1 when unknown) and its certificate's expiry.
func (f *flow) tokenFacts() (present bool, retries int, notAfter time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.reader == "" {
		return false, -1, time.Time{}
	}
	if f.cert != nil {
		notAfter = f.cert.NotAfter
	}
	return true, f.tries, notAfter
}

// jobsChanged refreshes the page when a job of the present signer arrived
// or ended.
func (f *flow) jobsChanged(signer string) {
	f.mu.Lock()
	mine := signer != "" && signer == f.signer
	f.mu.Unlock()
	if mine {
		f.publish(context.Background())
	}
}

// publish sends the current view to the page.
func (f *flow) publish(ctx context.Context) {
	f.d.kiosk.Publish(f.view(ctx))
}

func (f *flow) view(ctx context.Context) kiosk.View {
	f.mu.Lock()
	v := kiosk.View{
		State: f.state, Lang: f.lang, MaxBatch: f.d.cfg.Signing.MaxBatch,
		Progress: f.progress, Result: f.outcome, Error: f.lastErr, Notice: f.notice,
	}
	if f.problem != nil && v.Error == nil {
		v.Error = f.problem
	}
	if f.tries >= 0 {
		tries := f.tries
		v.TriesLeft = &tries
	}
	signer, cert := f.signer, f.cert
	v.CanSign = f.state == kiosk.StateToken && f.problem == nil && cert != nil
	f.mu.Unlock()
	if cert == nil {
		return v
	}
	v.Signer = signerView(cert, signer)
	jobs, err := f.d.readyJobs(ctx, signer)
	if err != nil {
		f.d.log.Error("list jobs for signer", "err", err)
		v.Error = &kiosk.Message{Code: kiosk.CodeInternal}
		return v
	}
	for _, j := range jobs {
		v.Jobs = append(v.Jobs, jobView(j))
	}
	return v
}

func signerView(cert *x509.Certificate, hash string) *kiosk.Signer {
	return &kiosk.Signer{
		Name: cert.Subject.CommonName, NIP: cert.Subject.SerialNumber,
		CertSHA256: hash, NotAfter: cert.NotAfter,
	}
}

func jobView(j queue.Job) kiosk.Job {
	var m jobMeta
	_ = json.Unmarshal(j.Meta, &m) // written by queueJob; an empty title is the worst case
	v := kiosk.Job{ID: j.ID, Title: m.Title, Number: m.Number, Sender: m.Sender, ReceivedAt: j.ReceivedAt, ExpiresAt: j.ExpiresAt}
	for i, d := range m.Docs {
		var sum string
		if i < len(j.Digests) {
			sum = hex.EncodeToString(j.Digests[i][:])
		}
		v.Documents = append(v.Documents, kiosk.Document{
			Index: i, Name: d.Name, MediaType: d.MediaType, SHA256: sum, Size: d.Size, Available: d.Available,
			Format: string(d.Format), Block: d.Block,
		})
	}
	return v
}

// readyJobs are the jobs waiting for this signer, and only for this signer,
// without their envelopes: the page's list is refreshed on every step of a
// batch and must not copy every document each time.
func (d *Daemon) readyJobs(ctx context.Context, signer string) ([]queue.Job, error) {
	all, err := d.store.BySignerHeads(ctx, signer, 0)
	if err != nil {
		return nil, err
	}
	now := d.now()
	out := all[:0]
	for _, j := range all {
		if j.State == queue.Ready && j.Signer == signer && (j.ExpiresAt.IsZero() || j.ExpiresAt.After(now)) {
			out = append(out, j)
		}
	}
	return out, nil
}

// checkCertificate says why a signer certificate cannot sign now, or nil.
func (d *Daemon) checkCertificate(cert *x509.Certificate) *kiosk.Message {
	now := d.now()
	date := func(t time.Time) map[string]string { return map[string]string{"date": t.Format("2006-01-02")} }
	switch {
	case now.After(cert.NotAfter):
		return &kiosk.Message{Code: kiosk.CodeCertExpired, Params: date(cert.NotAfter)}
	case now.Before(cert.NotBefore):
		return &kiosk.Message{Code: kiosk.CodeCertNotYetValid, Params: date(cert.NotBefore)}
	case cert.KeyUsage != 0 && cert.KeyUsage&(x509.KeyUsageDigitalSignature|x509.KeyUsageContentCommitment) == 0:
		return &kiosk.Message{Code: kiosk.CodeCertUsage}
	}
	if d.signerRoots != nil {
		_, err := cert.Verify(x509.VerifyOptions{
			Roots: d.signerRoots, CurrentTime: now,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
		})
		if err != nil {
			d.log.Info("signer certificate not trusted", "err", err)
			return &kiosk.Message{Code: kiosk.CodeCertUntrusted}
		}
	}
	return nil
}

// tokenMessage is what the official reads about a device error.
func tokenMessage(err error) kiosk.Message {
	var pe *device.PINError
	switch {
	case errors.Is(err, device.ErrPINBlocked):
		return kiosk.Message{Code: kiosk.CodePINBlocked}
	case errors.As(err, &pe):
		return kiosk.Message{Code: kiosk.CodeWrongPIN, Params: map[string]string{"n": strconv.Itoa(pe.Retries)}}
	case errors.Is(err, device.ErrLastAttempt):
		return kiosk.Message{Code: kiosk.CodeLastAttempt}
	case errors.Is(err, device.ErrTokenRemoved):
		return kiosk.Message{Code: kiosk.CodeTokenRemoved}
	case errors.Is(err, device.ErrNoToken):
		return kiosk.Message{Code: kiosk.CodeNoToken}
	case errors.Is(err, device.ErrCardBusy):
		return kiosk.Message{Code: kiosk.CodeCardBusy}
	case errors.Is(err, device.ErrNoReader):
		return kiosk.Message{Code: kiosk.CodeNoReader}
	case errors.Is(err, device.ErrPCSCUnavailable):
		return kiosk.Message{Code: kiosk.CodePCSC}
	case errors.Is(err, device.ErrSlotEmpty):
		return kiosk.Message{Code: kiosk.CodeSlotEmpty}
	case errors.Is(err, device.ErrUnsupported):
		return kiosk.Message{Code: kiosk.CodeUnsupported}
	}
	return kiosk.Message{Code: kiosk.CodeInternal}
}

// SetLanguage switches the page's language.
func (f *flow) SetLanguage(lang string) {
	f.mu.Lock()
	f.lang = lang
	f.mu.Unlock()
	f.publish(context.Background())
}

// Dismiss leaves the done screen for the list, or idle if the token left.
func (f *flow) Dismiss(ctx context.Context) {
	f.mu.Lock()
	if f.state == kiosk.StateDone {
		if f.reader == "" {
			f.resetLocked()
		} else {
			f.state, f.outcome, f.lastErr = kiosk.StateToken, nil, nil
		}
	}
	f.mu.Unlock()
	f.publish(ctx)
}

// Document returns a document of a job waiting for the present signer.
func (f *flow) Document(ctx context.Context, jobID string, index int) (string, []byte, error) {
	f.mu.Lock()
	signer := f.signer
	f.mu.Unlock()
	j, err := f.d.store.Get(ctx, jobID)
	if err != nil {
		return "", nil, err
	}
	if signer == "" || j.Signer != signer {
		return "", nil, fmt.Errorf("job %s is not for the present signer", jobID)
	}
	job, err := f.d.storedJob(j)
	if err != nil {
		return "", nil, err
	}
	if index >= len(job.Documents) || len(job.Documents[index].Content) == 0 {
		return "", nil, fmt.Errorf("job %s has no document %d", jobID, index)
	}
	doc := job.Documents[index]
	return doc.MediaType, doc.Content, nil
}

// claim marks the flow busy for one action by the present signer and
// returns the token's reader, certificate and signer hash.
func (f *flow) claim() (reader string, cert *x509.Certificate, signer string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case f.busy:
		return "", nil, "", kiosk.NewUserError(kiosk.CodeCardBusy, errors.New("an action is in flight"), nil)
	case f.reader == "" || f.cert == nil:
		return "", nil, "", kiosk.NewUserError(kiosk.CodeNoToken, device.ErrNoToken, nil)
	case f.problem != nil:
		return "", nil, "", &kiosk.UserError{Message: *f.problem}
	}
	f.busy = true
	return f.reader, f.cert, f.signer, nil
}

// Reject ends one job of the present signer with outcome rejected.
func (f *flow) Reject(ctx context.Context, jobID, reason string) error {
	_, _, signer, err := f.claim()
	if err != nil {
		return err
	}
	defer f.release()
	j, err := f.d.store.Get(ctx, jobID)
	if err != nil || j.Signer != signer || j.State != queue.Ready {
		return kiosk.NewUserError(kiosk.CodeJobGone, err, nil)
	}
	if err := f.d.reject(ctx, j, signer, reason); err != nil {
		return err
	}
	f.mu.Lock()
	f.lastErr, f.notice = nil, nil
	f.mu.Unlock()
	return nil
}

func (f *flow) release() {
	f.mu.Lock()
	f.busy = false
	// A token that left mid-batch: the done screen stays, saying what was
	// signed and that the token must come back, until the next tap.
	if f.reader == "" && f.state != kiosk.StateDone {
		f.resetLocked()
	}
	pending := f.pending
	f.pending = ""
	f.mu.Unlock()
	f.publish(context.Background())
	if pending != "" {
		// Read by the main loop, not on the request that just finished.
		select {
		case f.d.rearrive <- pending:
		default:
		}
	}
}

// selectJobs checks that every id names a job waiting for signer.
func (f *flow) selectJobs(ctx context.Context, ids []string, signer string) ([]queue.Job, error) {
	if max := f.d.cfg.Signing.MaxBatch; len(ids) > max {
		return nil, kiosk.NewUserError(kiosk.CodeBatchTooLarge, nil, map[string]string{"n": strconv.Itoa(max)})
	}
	ready, err := f.d.readyJobs(ctx, signer)
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

var _ kiosk.Controller = (*flow)(nil)
