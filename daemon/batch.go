package daemon

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/daemon/kiosk"
	"github.com/tekenid/teken/device"
	"github.com/tekenid/teken/queue"
)

// Sign verifies the PIN once and signs every document of the chosen jobs
// with the present token in one card session; a letter whose documents the
// official has not all seen is refused before that (checkViewed). Once the
// session has closed it adds the timestamps their PAdES documents asked
// for and completes each job, its result written in the same transaction.
// The token is held for card work only: no timestamp authority, nor any
// other network request, is waited on while it is. A token removed
// mid-batch keeps what was signed; the rest stays waiting. The caller
// zeroes pin.
func (f *flow) Sign(ctx context.Context, ids []string, pin []byte, confirmLast bool) error {
	who, err := f.claim()
	if err != nil {
		return err
	}
	defer f.release()
	jobs, err := f.selectJobs(ctx, ids, who.signer)
	if err != nil {
		return err
	}
	if err := f.checkViewed(jobs); err != nil {
		return err
	}
	// Shutdown may cut a batch short after the grace period; the job in
	// flight then goes back to waiting.
	ctx, done := f.batches.start(ctx)
	defer done()

	started := time.Now()
	var fnEnd time.Time
	var signed []*signedJob // every document signed on the card, not yet completed
	err = f.tokens.Session(ctx, who.reader, func(c card) error {
		f.metrics.tokenTime(started) // opening the card
		defer func() { fnEnd = time.Now() }()
		verifyStart := time.Now()
		err := c.VerifyPIN(pin, confirmLast)
		f.metrics.tokenTime(verifyStart)
		if err != nil {
			return err
		}
		f.setProgress(0, len(jobs))
		policyStart := time.Now()
		policy, err := c.SlotPINPolicy(device.SlotSignature)
		f.metrics.tokenTime(policyStart)
		if err != nil {
			return err
		}
		b := &batch{
			card: c, cert: who.cert, signer: who.signer, pin: pin,
			// After the first signature a PIN policy of 'always' (or
			// unknown) needs the PIN again, right before each further
			// signature.
			reverify: policy == device.PINPolicyAlways || policy == device.PINPolicyUnknown,
		}
		for _, j := range jobs {
			sj, err := f.signJob(ctx, b, j)
			if errors.Is(err, errJobGone) {
				continue // cancelled or expired since the official chose it
			}
			if err != nil {
				return err
			}
			signed = append(signed, sj)
			f.setProgress(len(signed), len(jobs))
		}
		return nil
	})
	if !fnEnd.IsZero() {
		f.metrics.tokenTime(fnEnd) // closing and resetting the card
	}
	// The card is released. Whatever ended the session, the jobs signed
	// in it are finished now, without it; a session error (the token
	// removed, say) is what the official reads, else the first failure
	// to complete.
	completed, cerr := f.completeJobs(ctx, who, signed)
	if err == nil {
		err = cerr
	}
	f.metrics.signBatch.Observe(time.Since(started).Seconds())
	return f.batchDone(ctx, who, completed, len(jobs), err)
}

// batch is one official's signing run inside one card session. It lives
// only as long as the session: nothing after the session may reach the
// card through it.
type batch struct {
	card   card
	cert   *x509.Certificate
	signer string // SHA-256 of cert
	pin    []byte // the caller's; zeroed by the kiosk after the batch
	// reverify: the slot's PIN policy asks for the PIN before every
	// signature, so each one after the first verifies it again.
	reverify bool
	// signatures counts the signatures made in this session.
	signatures int
}

// beforeSignature verifies the PIN again when the policy asks for it.
func (b *batch) beforeSignature(m *metrics) error {
	if b.signatures == 0 || !b.reverify {
		return nil
	}
	start := time.Now()
	err := b.card.VerifyPIN(b.pin, true)
	m.tokenTime(start)
	return err
}

// signedJob is a job whose every document the card has signed, waiting
// for its timestamps and its completion after the card session.
type signedJob struct {
	// job is the job's head: its envelope, which holds every document
	// once more, is dropped as soon as the job is signed.
	job  queue.Job
	docs []signedDoc
}

// waits reports whether a document of the job waits for a timestamp.
func (sj *signedJob) waits() bool {
	return slices.ContainsFunc(sj.docs, func(d signedDoc) bool { return d.augment })
}

// signJob moves one job to signing and signs every document of it on the
// card, and nothing more: its timestamps and its result come after the
// card session (completeJob). The move to signing comes first, inside the
// session, because from then on neither a Cancel nor expiry can end the
// job under the signature.
func (f *flow) signJob(ctx context.Context, b *batch, head queue.Job) (*signedJob, error) {
	j, err := f.store.Get(ctx, head.ID)
	if errors.Is(err, queue.ErrNotFound) {
		return nil, errJobGone
	}
	if err != nil {
		return nil, fmt.Errorf("load job %s: %w", head.ID, err)
	}
	job, err := f.envelopes.open(j)
	if err != nil {
		return nil, err
	}
	if _, err := f.store.Transition(ctx, j.ID, queue.Change{To: queue.Signing, Reason: "signer " + b.signer}); err != nil {
		var te *queue.TransitionError
		if errors.As(err, &te) || errors.Is(err, queue.ErrNotFound) {
			f.log.Info("job left the batch before signing", "job", j.ID, "err", err)
			return nil, errJobGone
		}
		return nil, fmt.Errorf("start signing %s: %w", j.ID, err)
	}
	docs := make([]signedDoc, 0, len(job.Documents))
	meta := metaOf(j)
	for i, doc := range job.Documents {
		var placed *kiosk.Block // where intake put the block
		if i < len(meta.Docs) {
			placed = meta.Docs[i].Block
		}
		if err := b.beforeSignature(f.metrics); err != nil {
			f.abandon(j.ID, err)
			return nil, err
		}
		b.signatures++
		sd, err := f.signer.signDocument(ctx, b.card, b.cert, doc, job.Signer.Jabatan, placed, f.now())
		if err != nil {
			f.abandon(j.ID, err)
			return nil, err
		}
		docs = append(docs, sd)
	}
	j.Envelope = nil // the result needs the head only (results.encode)
	return &signedJob{job: j, docs: docs}, nil
}

// completeJobs finishes, after the card session, the jobs signed in it:
// per job, the timestamps its documents asked for, then its completion.
// Jobs with nothing to fetch go first, and each job is completed, and let
// go, as soon as its own timestamps are in, so that signed PDFs do not
// wait in memory on the authority longer than their own job needs.
//
// Until it is completed a job stays in signing (queue), which a Cancel
// or expiry does not end. If tekend dies between the card session and a
// job's completion, the store's start-up recovery (queue's
// recoverSigning) puts the job back to ready: the signatures made on the
// card die with the process and the official signs that letter again,
// which is acceptable for a crash, since no result is ever half written
// and no letter is lost. A completion that fails here (the store), or a
// timestamp cut short by shutdown or the request's end, puts the job back
// to ready at once.
func (f *flow) completeJobs(ctx context.Context, who claimed, jobs []*signedJob) (int, error) {
	slices.SortStableFunc(jobs, func(a, b *signedJob) int {
		switch wa, wb := a.waits(), b.waits(); {
		case wa == wb:
			return 0
		case wb:
			return -1
		}
		return 1
	})
	completed := 0
	var first error
	for i, sj := range jobs {
		jobs[i] = nil // let go of its documents once it is done
		if err := f.completeJob(ctx, who, sj); err != nil {
			if first == nil {
				first = err
			}
			continue
		}
		completed++
	}
	return completed, first
}

// completeJob adds the timestamps of one signed job, with the card
// released, and completes it.
func (f *flow) completeJob(ctx context.Context, who claimed, sj *signedJob) error {
	docs := make([]api.SignedDocument, len(sj.docs))
	interrupted := false
	for i := range sj.docs {
		asked := sj.docs[i].augment
		f.signer.augmentDocument(ctx, &sj.docs[i], who.cert)
		interrupted = interrupted || asked && sj.docs[i].LevelError != "" && ctx.Err() != nil
		docs[i] = sj.docs[i].SignedDocument
		level := docs[i].Level
		if level == "" {
			level = map[api.Format]string{api.FormatCMS: api.LevelBB, api.FormatRaw: "none"}[docs[i].Format]
		}
		f.metrics.levels.WithLabelValues(string(docs[i].Format), level).Inc()
	}
	if interrupted {
		// Shutdown (or the request) cut the batch short: a timestamp it
		// interrupted is not the authority's failure, so the job waits
		// again rather than going out B-B.
		f.abandon(sj.job.ID, ctx.Err())
		return ctx.Err()
	}
	cctx := ctx
	if ctx.Err() != nil {
		// Cut short with this job's signatures made and nothing of it
		// waiting on the network: it is kept, as it was when jobs were
		// completed inside the session, with a fresh context as abandon
		// has.
		var cancel context.CancelFunc
		cctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
	}
	e := ending{outcome: queue.Signed, signerCert: who.cert.Raw, documents: docs}
	if parts := f.signer.ltv(); parts.requires() && slices.ContainsFunc(docs, func(d api.SignedDocument) bool { return d.LevelError != "" }) {
		// A letter never leaves below the level it must reach: the
		// signature is kept, and sent once the level is (held.go).
		e.hold = true
		f.log.Warn("signed letter held until it reaches signing.level", "job", sj.job.ID, "level", parts.level)
	}
	if err := f.complete.complete(cctx, sj.job, e, ""); err != nil {
		f.abandon(sj.job.ID, err)
		return err
	}
	f.metrics.waitTime.Observe(f.now().Sub(sj.job.ReceivedAt).Seconds())
	f.log.Info("job signed", "job", sj.job.ID, "documents", len(docs), "signer", who.signer)
	return nil
}

// errJobGone means a job of the batch ended (cancelled, expired) between
// the official's choice and its signature; the batch goes on without it.
var errJobGone = errors.New("job no longer waiting")

// abandon puts a job whose signing failed back to waiting. It uses a fresh
// context: a cancelled batch must still leave the job signable.
func (f *flow) abandon(id string, cause error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := f.store.Transition(ctx, id, queue.Change{To: queue.Ready, Reason: "abandoned: " + cause.Error()}); err != nil {
		f.log.Error("abandon signing", "job", id, "err", err)
	}
}

func (f *flow) setProgress(done, total int) {
	f.mu.Lock()
	f.p.signing(done, total)
	f.mu.Unlock()
	f.publish(context.Background())
}

// batchDone sets the page after a batch and returns what the official reads.
func (f *flow) batchDone(ctx context.Context, who claimed, signed, total int, err error) error {
	f.mu.Lock()
	end := f.p.batchDone(signed, total, err)
	tries := f.p.tries
	f.mu.Unlock()
	switch {
	case end.pinRefused:
		f.metrics.pinFailures.Inc()
		f.log.Info("pin not accepted", "reader", who.reader, "retries", tries)
		f.auditPIN(err, who.signer, tries)
	case end.internal:
		f.log.Error("signing batch failed", "signed", signed, "total", total, "err", err)
		f.setLastError(err.Error())
	case err != nil:
		f.log.Info("signing batch stopped", "signed", signed, "total", total, "err", err)
	}
	f.publish(ctx)
	f.statusChanged()
	return end.err
}

// Audit events of the official's PIN entries that the token refused; a PIN
// itself never reaches the log.
const (
	eventPINWrong   queue.Event = "pin.wrong"
	eventPINBlocked queue.Event = "pin.blocked"
)

// auditPIN records a refused PIN entry with the signer and the tries left,
// so an auditor can tell who locked a token, and when.
func (f *flow) auditPIN(cause error, signer string, tries int) {
	if errors.Is(cause, device.ErrLastAttempt) {
		return // refused before the card was asked: no try was spent
	}
	e := queue.AuditEntry{Event: eventPINWrong, Signer: signer, Reason: "tries left " + strconv.Itoa(tries)}
	if errors.Is(cause, device.ErrPINBlocked) {
		e.Event, e.Reason = eventPINBlocked, "pin blocked"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := f.store.AppendAudit(ctx, e); err != nil {
		f.log.Error("audit pin failure", "err", err)
	}
}

// batches ties each signing batch to its request and to shutdown's grace:
// a batch outlives nothing but its request, and shutdown lets the one in
// flight finish for the grace period before it cancels it.
type batches struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func newBatches() *batches {
	b := &batches{}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	return b
}

// start returns the context a batch runs in and the function that ends it.
func (b *batches) start(req context.Context) (context.Context, func()) {
	b.wg.Add(1)
	ctx, cancel := context.WithCancel(b.ctx)
	stop := context.AfterFunc(req, cancel)
	return ctx, func() {
		stop()
		cancel()
		b.wg.Done()
	}
}

// drain waits up to grace for the batch in flight; past that it calls
// abandoning, cancels the batch (its job goes back to waiting) and waits
// for it to end.
func (b *batches) drain(grace time.Duration, abandoning func()) {
	done := make(chan struct{})
	go func() { b.wg.Wait(); close(done) }()
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		abandoning()
		b.cancel()
		<-done
	}
	b.cancel()
}
