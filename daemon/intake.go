package daemon

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/daemon/kiosk"
	"github.com/tekenid/teken/queue"
	"github.com/tekenid/teken/signature/pades"
	"github.com/tekenid/teken/transport"
)

// jobMeta is what the terminal keeps beside a stored envelope so that lists
// render without decoding documents. It is opaque to the store.
type jobMeta struct {
	Title      string    `json:"title"`
	Number     string    `json:"number,omitempty"`
	Sender     string    `json:"sender,omitempty"`
	SignerName string    `json:"signer_name,omitempty"`
	SignerNIP  string    `json:"signer_nip,omitempty"`
	KID        string    `json:"kid,omitempty"`
	IssuedAt   time.Time `json:"issued_at"`
	Docs       []docMeta `json:"docs"`
	// Fields are the job's further label/value pairs, in its order; jobs
	// stored before they were kept have none.
	Fields []api.Field `json:"fields,omitempty"`
}

type docMeta struct {
	ID        string     `json:"id"`
	Name      string     `json:"name,omitempty"`
	MediaType string     `json:"media_type"`
	Size      int64      `json:"size"`
	Format    api.Format `json:"format"`
	Available bool       `json:"available"`
	// Block is where a pades document's visible block will stand, for
	// the preview.
	Block *kiosk.Block `json:"block,omitempty"`
}

// intake is the terminal's side of the wire contract: it verifies what the
// transport receives, stores it, and answers with receipts and Syncs. It
// implements transport.TerminalHandler. The transport hands it up to
// intakeWorkers job envelopes at once, never two of one job id together;
// what HandleJob shares — the store, the verifier, the metrics, retrying —
// is safe for several at once.
type intake struct {
	store    intakeStore
	verifier envelopeVerifier // the keys in force (reload.go)
	complete *completer
	metrics  *metrics
	log      *slog.Logger
	now      func() time.Time
	terminal string
	// jobsChanged tells the flow that a job of signer arrived or ended;
	// statusChanged, setLastError and resendAll reach the main loop and
	// the outbox without waiting for them.
	jobsChanged   func(signer string)
	statusChanged func()
	setLastError  func(msg string)
	resendAll     func()
	pdf           pdfBudget
	// allowUnrenderable accepts documents the page cannot show
	// (signing.allow_unrenderable_documents); off, such a job is refused.
	allowUnrenderable bool

	retrying retryState
}

// intakeStore is the part of the job store intake uses.
type intakeStore interface {
	Insert(ctx context.Context, j queue.Job) (queue.Job, bool, error)
	InsertReady(ctx context.Context, j queue.Job) (queue.Job, bool, error)
	Get(ctx context.Context, id string) (queue.Job, error)
	Head(ctx context.Context, id string) (queue.Job, error)
	Transition(ctx context.Context, id string, c queue.Change) (queue.Job, error)
	AppendAudit(ctx context.Context, e queue.AuditEntry) (queue.AuditEntry, error)
	AckResult(ctx context.Context, id string) (bool, error)
	AckResults(ctx context.Context, ids []string) (int, error)
	ByStateHeads(ctx context.Context, st queue.State, limit int) ([]queue.Job, error)
	WaitingIDs(ctx context.Context, limit int) ([]string, bool, error)
	Undelivered(ctx context.Context, after uint64, limit int) ([]queue.Result, error)
	HeldResults(ctx context.Context, limit int) ([]queue.Result, error)
}

// transient records a failure the transport will retry (the disk, a full
// or closed store): the metric and the status say intake is held up, and
// why, until a message goes through again.
func (in *intake) transient(err error) error {
	if err == nil {
		in.retrying.clear()
		return nil
	}
	in.metrics.intakeFailures.WithLabelValues("transient").Inc()
	if in.retrying.set(err) {
		in.setLastError("intake: " + err.Error())
	}
	return err
}

// permanent reports whether err can never go away by trying the same
// message again: the message itself cannot be stored as it is, or the job
// it names moved on meanwhile. Everything else — the disk, a full, locked
// or closed store, a cancelled context — is transient.
func permanent(err error) bool {
	var te *queue.TransitionError
	var re *api.RefusalError
	return errors.Is(err, queue.ErrInvalid) || errors.As(err, &te) || errors.As(err, &re)
}

// retryState says whether intake is retrying a message, and why.
type retryState struct{ why atomic.Pointer[string] }

// set records err and reports whether intake was not retrying before.
func (r *retryState) set(err error) bool {
	msg := err.Error()
	return r.why.Swap(&msg) == nil
}

func (r *retryState) clear() { r.why.Store(nil) }

// reason is why intake is retrying, or "".
func (r *retryState) reason() string {
	if p := r.why.Load(); p != nil {
		return *p
	}
	return ""
}

// intakeWorkers is how many job envelopes are verified and stored at once:
// enough to fill the broker's in-flight window (Mosquitto's default is 20)
// so that their store transactions share fsyncs.
const intakeWorkers = 32

var (
	_ intakeStore               = (*queue.Store)(nil)
	_ transport.TerminalHandler = (*intake)(nil)
)

// HandleJob verifies one job envelope and stores it, and only then lets the
// transport acknowledge it. A refused envelope is recorded in the audit log
// (never stored as a job) before its receipt goes out.
func (in *intake) HandleJob(ctx context.Context, envelope []byte) (api.Receipt, error) {
	rc, err := in.handleJob(ctx, envelope)
	if err != nil && permanent(err) {
		// Stored or not, this message can never be handled better: it
		// is acknowledged, with what the terminal knows of it.
		in.log.Error("job message cannot be handled; acknowledged", "job", rc.JobID, "err", err)
		in.metrics.intakeFailures.WithLabelValues("permanent").Inc()
		in.retrying.clear()
		if rc.Status == "" { // not stored
			rc = in.receipt(envelope)
			rc.JobID = peekJobID(envelope)
			rc.Status, rc.Reason, rc.Detail = api.ReceiptRefused, api.ReasonInternal, api.SanitizeDetail(err.Error())
		}
		return rc, nil
	}
	return rc, in.transient(err)
}

// receipt is the start of every receipt for envelope.
func (in *intake) receipt(envelope []byte) api.Receipt {
	return api.Receipt{V: api.Version, Terminal: in.terminal, For: api.ForJob, At: in.now(), EnvelopeSHA256: api.EnvelopeSHA256(envelope)}
}

func (in *intake) handleJob(ctx context.Context, envelope []byte) (api.Receipt, error) {
	rc := in.receipt(envelope)
	now := rc.At
	job, kid, err := in.verifier.VerifyJob(envelope)
	if err != nil {
		reason := api.Reason(err)
		// The refusal names what was wrong, quoting the envelope: made
		// safe to carry in the receipt where it is built.
		rc.Status, rc.Reason, rc.Detail = api.ReceiptRefused, reason, api.RefusalDetail(err)
		rc.JobID = peekJobID(envelope)
		in.metrics.jobsReceived.WithLabelValues("refused", string(reason)).Inc()
		in.log.Warn("job refused", "job", rc.JobID, "reason", reason, "detail", err.Error(), "envelope_sha256", api.EnvelopeSHA256(envelope))
		entry := queue.AuditEntry{JobID: rc.JobID, Event: eventRefused, Reason: string(reason)}
		if _, err := in.store.AppendAudit(ctx, entry); err != nil {
			return api.Receipt{}, fmt.Errorf("record refusal: %w", err)
		}
		return rc, nil
	}
	rc.JobID = job.JobID
	if err := unshowable(job); err != nil && !in.allowUnrenderable {
		// What you see is what you sign: a document the page cannot show
		// is not signed here.
		return in.refuseJob(ctx, rc, api.ReasonUnsupportedMediaType, err)
	}
	// Each PDF is parsed once, here: what the page and admission need of
	// it is kept beside the job.
	insp := inspectJob(job, in.pdf)
	if insp.refusal != nil {
		// The central side asked for something no PDF viewer would show.
		return in.refuseJob(ctx, rc, api.ReasonBadDocument, insp.refusal)
	}
	// A job with nothing wrong goes straight to ready: one transaction.
	insert := in.store.InsertReady
	if insp.problem != nil {
		insert = in.store.Insert // stored first, then failed with its Result (admit)
	}
	stored, created, err := insert(ctx, queueJob(job, kid, envelope, now, insp))
	var replay *queue.ReplayError
	if errors.As(err, &replay) {
		if !replay.SameEnvelope {
			return in.conflict(ctx, rc, hex.EncodeToString(replay.EnvelopeSHA256[:]))
		}
		// Done and pruned earlier, its window still open: nothing is
		// stored or shown again. The answer is the one for any
		// duplicate — the terminal had this job — and the central side
		// holds its result already.
		in.metrics.jobsReceived.WithLabelValues("duplicate", "").Inc()
		in.log.Warn("replay of a finished job dropped", "job", job.JobID,
			"same_envelope", replay.SameEnvelope, "guarded_until", replay.Until)
		rc.Status = api.ReceiptDuplicate
		return rc, nil
	}
	if errors.Is(err, queue.ErrFull) {
		// The size cap or a full filesystem: the store says which, once,
		// and /readyz and the status say it while it lasts.
		in.metrics.jobsReceived.WithLabelValues("refused", string(api.ReasonStoreFull)).Inc()
		in.setLastError("store full")
		// Not acknowledged: the broker keeps it until there is room.
		return api.Receipt{}, fmt.Errorf("store job %s: %w", job.JobID, err)
	}
	if err != nil {
		return api.Receipt{}, fmt.Errorf("store job %s: %w", job.JobID, err)
	}
	if !created {
		// The same payload signed again is the same job (an ES256
		// signature differs each time); another payload is not.
		if stored.Envelope != nil && !api.SamePayload(stored.Envelope, envelope) {
			return in.conflict(ctx, rc, api.EnvelopeSHA256(stored.Envelope))
		}
		in.metrics.jobsReceived.WithLabelValues("duplicate", "").Inc()
		rc.Status = api.ReceiptDuplicate
		if stored.State == queue.Received {
			// A crash between insert and admission: finish the step now.
			if err := in.admit(ctx, stored, job, insp.problem); err != nil {
				return api.Receipt{}, err
			}
		}
		return rc, nil
	}
	in.metrics.jobsReceived.WithLabelValues("accepted", "").Inc()
	if insp.problem != nil {
		if err := in.admit(ctx, stored, job, insp.problem); err != nil {
			return api.Receipt{}, err
		}
	}
	in.log.Info("job stored", "job", job.JobID, "documents", len(job.Documents), "expires", job.ExpiresAt)
	rc.Status = api.ReceiptStored
	in.jobsChanged(job.Signer.CertSHA256)
	in.statusChanged()
	return rc, nil
}

// refuseJob answers a verified job that the terminal will not take: said at
// once, in the receipt, with why in its detail; recorded in the audit log;
// nothing stored.
func (in *intake) refuseJob(ctx context.Context, rc api.Receipt, reason api.ReasonCode, why error) (api.Receipt, error) {
	rc.Status, rc.Reason, rc.Detail = api.ReceiptRefused, reason, api.SanitizeDetail(why.Error())
	in.metrics.jobsReceived.WithLabelValues("refused", string(reason)).Inc()
	in.log.Warn("job refused", "job", rc.JobID, "reason", reason, "detail", why.Error())
	entry := queue.AuditEntry{JobID: rc.JobID, Event: eventRefused, Reason: string(reason)}
	if _, err := in.store.AppendAudit(ctx, entry); err != nil {
		return api.Receipt{}, fmt.Errorf("record refusal: %w", err)
	}
	return rc, nil
}

// unshowable names the first document of job that carries its bytes and
// that the kiosk page cannot show (kiosk.Renderable), or returns nil.
// Hash-only documents have their own rule (dispatcher.allow_hash_only).
func unshowable(job *api.Job) error {
	for _, doc := range job.Documents {
		if doc.Content != nil && !kiosk.Renderable(doc.MediaType) {
			return fmt.Errorf("document %s has media type %s, which this terminal cannot show the official; it shows %s",
				doc.ID, doc.MediaType, strings.Join(kiosk.RenderableTypes(), ", "))
		}
	}
	return nil
}

// eventConflict is the audit event of a job id offered again with another
// envelope.
const eventConflict queue.Event = "job.conflict"

// conflict refuses a known job id that comes with another envelope: the
// terminal keeps what it holds (what the official may already have seen or
// signed), and the central side learns which envelope that is.
func (in *intake) conflict(ctx context.Context, rc api.Receipt, held string) (api.Receipt, error) {
	rc.Status, rc.Reason, rc.StoredEnvelopeSHA256 = api.ReceiptRefused, api.ReasonConflict, held
	rc.Detail = "job id " + rc.JobID + " is held with another envelope (sha256 " + held + "); a job id names one envelope: send a new job id"
	in.metrics.jobsReceived.WithLabelValues("refused", string(api.ReasonConflict)).Inc()
	in.log.Warn("job id reused with another envelope; refused", "job", rc.JobID, "held_envelope_sha256", held, "envelope_sha256", rc.EnvelopeSHA256)
	entry := queue.AuditEntry{JobID: rc.JobID, Event: eventConflict, Reason: string(api.ReasonConflict)}
	if _, err := in.store.AppendAudit(ctx, entry); err != nil {
		return api.Receipt{}, fmt.Errorf("record conflict: %w", err)
	}
	return rc, nil
}

// admit moves a stored job on from received: to waiting for its signer, or
// to failed when a document cannot be signed in the format asked (problem)
// — stored first, so the failure reaches the central side as a Result
// naming the document, like any other outcome. A job that moved on
// meanwhile (a Cancel came first) is left as it is.
func (in *intake) admit(ctx context.Context, stored queue.Job, job *api.Job, problem error) error {
	var err error
	if problem != nil {
		in.log.Warn("job cannot be signed", "job", job.JobID, "err", problem)
		err = in.complete.finish(ctx, stored, queue.Failed, api.ReasonBadDocument, problem.Error())
	} else if _, err = in.store.Transition(ctx, job.JobID, queue.Change{To: queue.Ready}); err != nil {
		err = fmt.Errorf("ready job %s: %w", job.JobID, err)
	}
	var te *queue.TransitionError
	if errors.As(err, &te) {
		in.log.Info("job moved on before admission", "job", job.JobID, "err", err)
		return nil
	}
	return err
}

// inspection is what intake learned of a job's PDFs from one parse each.
type inspection struct {
	blocks []*kiosk.Block // per document: where its visible block will stand
	// refusal is a placement the document does not have room for (no such
	// page, a rect off the page): the job is refused in its receipt.
	refusal error
	problem error // why a pades document cannot be signed, or nil
}

// pdfBudget bounds the PDF work of one job: each document within its own
// limits, and all of a job's documents together within perJob inflated
// bytes (0: no bound beyond each document's).
type pdfBudget struct {
	perDoc pades.Limits
	perJob int64
}

// inspectJob parses every pades document once, within the budget. The
// first document that cannot be signed is the job's problem; the rest are
// not parsed.
func inspectJob(job *api.Job, b pdfBudget) inspection {
	in := inspection{blocks: make([]*kiosk.Block, len(job.Documents))}
	left := b.perJob
	for i, doc := range job.Documents {
		if doc.SignatureFormat() != api.FormatPAdES {
			continue
		}
		lim := b.perDoc
		// perJob 0: no bound beyond each document's own.
		jobBound := b.perJob > 0 && (lim.MaxDecompressedBytes <= 0 || left < lim.MaxDecompressedBytes)
		if jobBound {
			lim.MaxDecompressedBytes = max(left, 1)
		}
		a, err := appearance(doc, job.Signer.Jabatan, nil, lim)
		var got *pades.Inspection
		if err == nil {
			got, err = pades.Inspect(doc.Content, a, lim)
		}
		if err != nil {
			switch {
			case doc.Visible != nil && (errors.Is(err, pades.ErrPage) || errors.Is(err, pades.ErrPlacement) || errors.Is(err, pades.ErrAnchorNotFound)):
				in.refusal = fmt.Errorf("document %s: visible: %w", doc.ID, err)
				return in
			case jobBound && errors.Is(err, pades.ErrTooComplex):
				err = fmt.Errorf("the job's PDFs together need more than signing.pdf_max_job_decompressed_bytes (%d): %w", b.perJob, err)
			}
			in.problem = fmt.Errorf("document %s: %w", doc.ID, err)
			return in
		}
		left -= got.Decompressed
		if got.Block != nil {
			in.blocks[i] = &kiosk.Block{Page: got.Block.Page, Rect: got.Block.Rect}
		}
	}
	return in
}

// eventRefused is the audit event of an envelope refused at the door.
const eventRefused queue.Event = "job.refused"

func queueJob(job *api.Job, kid string, envelope []byte, now time.Time, insp inspection) queue.Job {
	meta := jobMeta{
		Title: job.Title, Number: job.Number, Sender: job.Sender, Fields: job.Fields,
		SignerName: job.Signer.Name, SignerNIP: job.Signer.NIP, KID: kid, IssuedAt: job.IssuedAt,
	}
	digests := make([]queue.Digest, len(job.Documents))
	for i, doc := range job.Documents {
		size := doc.Size
		if len(doc.Content) > 0 {
			size = int64(len(doc.Content))
			digests[i] = sha256.Sum256(doc.Content)
		} else {
			_, _ = hex.Decode(digests[i][:], []byte(doc.SHA256))
		}
		dm := docMeta{
			ID: doc.ID, Name: doc.Name, MediaType: doc.MediaType, Size: size,
			Format: doc.SignatureFormat(), Available: len(doc.Content) > 0, Block: insp.blocks[i],
		}
		meta.Docs = append(meta.Docs, dm)
	}
	rawMeta, _ := json.Marshal(meta)
	return queue.Job{
		ID: job.JobID, Terminal: job.Terminal, Signer: job.Signer.CertSHA256,
		Meta: rawMeta, Envelope: envelope, Digests: digests,
		ReceivedAt: now, ExpiresAt: job.ExpiresAt,
	}
}

// peekJobID names a refused envelope in its receipt when its payload can be
// read at all; the id is not trusted, only echoed.
func peekJobID(envelope []byte) string {
	id, err := api.UnverifiedJobID(envelope)
	if err != nil || api.ValidJobID(id) != nil {
		return ""
	}
	return id
}

// SyncState lists what the terminal holds, at most api.MaxSyncIDs ids per
// list; a longer list is cut and the Sync says so.
func (in *intake) SyncState(ctx context.Context) (api.Sync, error) {
	s := api.Sync{V: 1, Terminal: in.terminal, At: in.now(), JobsWaiting: []string{}, ResultsUndelivered: []string{}}
	// Ids from the state index only: the records of ten thousand jobs
	// would stay in the resident set after every Sync.
	waiting, more, err := in.store.WaitingIDs(ctx, api.MaxSyncIDs)
	if err != nil {
		return api.Sync{}, fmt.Errorf("sync: %w", err)
	}
	s.JobsWaiting = append(s.JobsWaiting, waiting...)
	s.Truncated = more
	// A letter signed and held until its level (signing.require_level)
	// is held by the terminal with no result sent: the central side must
	// not dispatch it again.
	held, err := in.store.HeldResults(ctx, api.MaxSyncIDs)
	if err != nil {
		return api.Sync{}, fmt.Errorf("sync: %w", err)
	}
	for _, r := range held {
		if len(s.JobsWaiting) == api.MaxSyncIDs {
			s.Truncated = true
			break
		}
		s.JobsWaiting = append(s.JobsWaiting, r.JobID)
	}
	for after := uint64(0); ; {
		results, err := in.store.Undelivered(ctx, after, 500)
		if err != nil {
			return api.Sync{}, fmt.Errorf("sync: %w", err)
		}
		if len(results) == 0 {
			return s, nil
		}
		for _, r := range results {
			if len(s.ResultsUndelivered) == api.MaxSyncIDs {
				s.Truncated = true
				return s, nil
			}
			s.ResultsUndelivered = append(s.ResultsUndelivered, r.JobID)
		}
		after = results[len(results)-1].Seq
	}
}

// Connected re-sends, after every connect, each result not yet acknowledged.
func (in *intake) Connected(ctx context.Context) {
	in.metrics.reconnects.Inc()
	in.resendAll()
	in.statusChanged()
}
