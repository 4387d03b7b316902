package daemon

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/daemon/kiosk"
	"github.com/tekenid/teken/device"
	"github.com/tekenid/teken/queue"
)

// Sign verifies the PIN once and signs every document of the chosen jobs
// with the present token. Each job's result is written in the same
// transaction that completes it. A token removed mid-batch keeps what was
// signed; the rest stays waiting. The caller zeroes pin.
func (f *flow) Sign(ctx context.Context, ids []string, pin []byte, confirmLast bool) error {
	reader, cert, signer, err := f.claim()
	if err != nil {
		return err
	}
	defer f.release()
	jobs, err := f.selectJobs(ctx, ids, signer)
	if err != nil {
		return err
	}
	// Shutdown may cut a batch short after the grace period; the job in
	// flight then goes back to waiting.
	ctx, cancel := f.d.signingContext(ctx)
	defer cancel()

	signed := 0
	started := time.Now()
	var fnEnd time.Time
	err = f.d.tokens.Session(ctx, reader, func(s *device.Session) error {
		f.d.metrics.tokenTime(started) // opening the card
		defer func() { fnEnd = time.Now() }()
		verifyStart := time.Now()
		err := s.VerifyPIN(pin, confirmLast)
		f.d.metrics.tokenTime(verifyStart)
		if err != nil {
			return err
		}
		// The page leaves the PIN screen only once the PIN is right.
		f.setProgress(0, len(jobs))
		policyStart := time.Now()
		policy, err := s.SlotPINPolicy(device.SlotSignature)
		f.d.metrics.tokenTime(policyStart)
		if err != nil {
			return err
		}
		// After the first signature a PIN policy of 'always' (or unknown)
		// needs the PIN again, right before each further signature.
		reverify := policy == device.PINPolicyAlways || policy == device.PINPolicyUnknown
		first := true
		for _, j := range jobs {
			err := f.d.signJob(ctx, s, cert, j, signer, pin, reverify, &first)
			if errors.Is(err, errJobGone) {
				continue // cancelled or expired since the official chose it
			}
			if err != nil {
				return err
			}
			signed++
			f.setProgress(signed, len(jobs))
		}
		return nil
	})
	if !fnEnd.IsZero() {
		f.d.metrics.tokenTime(fnEnd) // closing and resetting the card
	}
	f.d.metrics.signBatch.Observe(time.Since(started).Seconds())
	return f.batchDone(ctx, reader, signed, len(jobs), err)
}

// signJob signs every document of one job and completes it.
func (d *Daemon) signJob(ctx context.Context, s *device.Session, cert *x509.Certificate, head queue.Job, signer string, pin []byte, reverify bool, first *bool) error {
	j, err := d.store.Get(ctx, head.ID)
	if errors.Is(err, queue.ErrNotFound) {
		return errJobGone
	}
	if err != nil {
		return fmt.Errorf("load job %s: %w", head.ID, err)
	}
	job, err := d.storedJob(j)
	if err != nil {
		return err
	}
	if _, err := d.store.Transition(ctx, j.ID, queue.Change{To: queue.Signing, Reason: "signer " + signer}); err != nil {
		var te *queue.TransitionError
		if errors.As(err, &te) || errors.Is(err, queue.ErrNotFound) {
			d.log.Info("job left the batch before signing", "job", j.ID, "err", err)
			return errJobGone
		}
		return fmt.Errorf("start signing %s: %w", j.ID, err)
	}
	docs := make([]api.SignedDocument, 0, len(job.Documents))
	for _, doc := range job.Documents {
		if !*first && reverify {
			verifyStart := time.Now()
			err := s.VerifyPIN(pin, true)
			d.metrics.tokenTime(verifyStart)
			if err != nil {
				d.abandon(j.ID, err)
				return err
			}
		}
		*first = false
		cardStart := time.Now()
		sd, err := d.signDocument(ctx, s, cert, doc, d.now())
		d.metrics.cardSign.Observe(time.Since(cardStart).Seconds())
		if err != nil {
			d.abandon(j.ID, err)
			return err
		}
		docs = append(docs, sd)
	}
	res := d.result(j, api.OutcomeSigned, "", "")
	res.SignerCert = cert.Raw
	res.Documents = docs
	payload, err := api.Encode(res)
	if err != nil {
		d.abandon(j.ID, err)
		return fmt.Errorf("encode result %s: %w", j.ID, err)
	}
	if _, err := d.store.Transition(ctx, j.ID, queue.Change{To: queue.Done, Outcome: queue.Signed, Payload: payload}); err != nil {
		d.abandon(j.ID, err)
		return fmt.Errorf("complete %s: %w", j.ID, err)
	}
	d.metrics.jobsCompleted.WithLabelValues("signed").Inc()
	d.metrics.waitTime.Observe(d.now().Sub(j.ReceivedAt).Seconds())
	d.log.Info("job signed", "job", j.ID, "documents", len(docs), "signer", signer)
	d.outbox.notify()
	return nil
}

// errJobGone means a job of the batch ended (cancelled, expired) between
// the official's choice and its signature; the batch goes on without it.
var errJobGone = errors.New("job no longer waiting")

// abandon puts a job whose signing failed back to waiting. It uses a fresh
// context: a cancelled batch must still leave the job signable.
func (d *Daemon) abandon(id string, cause error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := d.store.Transition(ctx, id, queue.Change{To: queue.Ready, Reason: "abandoned: " + cause.Error()}); err != nil {
		d.log.Error("abandon signing", "job", id, "err", err)
	}
}

func (f *flow) setProgress(done, total int) {
	f.mu.Lock()
	f.state = kiosk.StateSigning
	f.progress = &kiosk.Progress{Done: done, Total: total}
	f.lastErr, f.notice = nil, nil
	f.mu.Unlock()
	f.publish(context.Background())
}

// batchDone sets the page after a batch and returns what the official reads.
func (f *flow) batchDone(ctx context.Context, reader string, signed, total int, err error) error {
	left := total - signed
	var pe *device.PINError
	f.mu.Lock()
	defer func() {
		f.mu.Unlock()
		f.publish(ctx)
		f.d.statusChanged()
	}()
	f.progress = nil
	switch {
	case err == nil:
		f.state, f.outcome = kiosk.StateDone, &kiosk.Outcome{Signed: signed}
		f.tries = -1
		return nil
	case errors.As(err, &pe) || errors.Is(err, device.ErrLastAttempt) || errors.Is(err, device.ErrPINBlocked):
		f.d.metrics.pinFailures.Inc()
		f.state = kiosk.StateToken
		if pe != nil {
			f.tries = pe.Retries
		}
		msg := tokenMessage(err)
		if errors.Is(err, device.ErrPINBlocked) {
			f.problem = &msg
		}
		f.d.log.Info("pin not accepted", "reader", reader, "retries", f.tries)
		f.d.auditPIN(err, f.signer, f.tries)
		return &kiosk.UserError{Message: msg, Err: err}
	}
	msg := tokenMessage(err)
	if msg.Code == kiosk.CodeInternal {
		f.d.log.Error("signing batch failed", "signed", signed, "total", total, "err", err)
		f.d.setLastError(err.Error())
	} else {
		f.d.log.Info("signing batch stopped", "signed", signed, "total", total, "err", err)
	}
	if signed > 0 {
		f.state, f.outcome = kiosk.StateDone, &kiosk.Outcome{Signed: signed, Left: left}
		f.lastErr = &msg
		return nil
	}
	f.state = kiosk.StateToken
	if f.reader == "" {
		f.resetLocked()
	}
	f.lastErr = &msg
	if left > 0 && signed > 0 {
		f.notice = &kiosk.Message{Code: kiosk.CodeSignedPartial, Params: map[string]string{"signed": strconv.Itoa(signed), "left": strconv.Itoa(left)}}
	}
	return &kiosk.UserError{Message: msg, Err: err}
}

// reject completes a job as rejected by the official.
func (d *Daemon) reject(ctx context.Context, j queue.Job, signer, reason string) error {
	if err := d.finish(ctx, j, queue.Rejected, api.ReasonRejectedBySigner, reason); err != nil {
		return err
	}
	d.log.Info("job rejected", "job", j.ID, "signer", signer)
	return nil
}

// finish completes a job that was not signed, with its result in the same
// transaction.
func (d *Daemon) finish(ctx context.Context, j queue.Job, outcome queue.Outcome, reason api.ReasonCode, detail string) error {
	res := d.result(j, apiOutcome(outcome), reason, detail)
	payload, err := api.Encode(res)
	if err != nil {
		return fmt.Errorf("encode result %s: %w", j.ID, err)
	}
	why := string(reason)
	if detail != "" {
		// The official's own words go into the audit log too.
		why += ": " + detail
	}
	if _, err := d.store.Transition(ctx, j.ID, queue.Change{To: queue.Done, Outcome: outcome, Reason: why, Payload: payload}); err != nil {
		return fmt.Errorf("complete %s: %w", j.ID, err)
	}
	d.metrics.jobsCompleted.WithLabelValues(outcome.String()).Inc()
	d.outbox.notify()
	d.statusChanged()
	return nil
}

func (d *Daemon) result(j queue.Job, outcome api.Outcome, reason api.ReasonCode, detail string) *api.Result {
	kid, _ := api.EnvelopeKID(j.Envelope)
	return &api.Result{
		V: api.Version, JobID: j.ID, Terminal: d.cfg.TerminalID, KID: kid,
		Outcome: outcome, Reason: reason, Detail: detail, CompletedAt: d.now(),
	}
}

func apiOutcome(o queue.Outcome) api.Outcome {
	switch o {
	case queue.Signed:
		return api.OutcomeSigned
	case queue.Rejected:
		return api.OutcomeRejected
	case queue.Expired:
		return api.OutcomeExpired
	case queue.Cancelled:
		return api.OutcomeCancelled
	}
	return api.OutcomeFailed
}

// Audit events of the official's PIN entries that the token refused; a PIN
// itself never reaches the log.
const (
	eventPINWrong   queue.Event = "pin.wrong"
	eventPINBlocked queue.Event = "pin.blocked"
)

// auditPIN records a refused PIN entry with the signer and the tries left,
// so an auditor can tell who locked a token, and when.
func (d *Daemon) auditPIN(cause error, signer string, tries int) {
	if errors.Is(cause, device.ErrLastAttempt) {
		return // refused before the card was asked: no try was spent
	}
	e := queue.AuditEntry{Event: eventPINWrong, Signer: signer, Reason: "tries left " + strconv.Itoa(tries)}
	if errors.Is(cause, device.ErrPINBlocked) {
		e.Event, e.Reason = eventPINBlocked, "pin blocked"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := d.store.AppendAudit(ctx, e); err != nil {
		d.log.Error("audit pin failure", "err", err)
	}
}
