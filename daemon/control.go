package daemon

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/queue"
	"github.com/tekenid/teken/transport"
)

// HandleControl acts on a Cancel, a ResultAck, a ResultAcks or a
// SyncRequest, and
// answers one that is refused or changes nothing with a receipt.
func (in *intake) HandleControl(ctx context.Context, envelope []byte) (transport.ControlAnswer, error) {
	a, err := in.handleControl(ctx, envelope)
	if err != nil && permanent(err) {
		in.log.Error("control message cannot be handled; acknowledged", "err", err)
		in.metrics.intakeFailures.WithLabelValues("permanent").Inc()
		in.retrying.clear()
		return transport.ControlAnswer{}, nil
	}
	return a, in.transient(err)
}

// controlReceipt is the receipt for a control message that did nothing.
func (in *intake) controlReceipt(envelope []byte, what api.ReceiptFor, jobID string, status api.ReceiptStatus, reason api.ReasonCode, detail string) transport.ControlAnswer {
	rc := in.receipt(envelope)
	rc.For, rc.JobID, rc.Status, rc.Reason, rc.Detail = what, jobID, status, reason, api.SanitizeDetail(detail)
	return transport.ControlAnswer{Receipt: &rc}
}

// controlRefused logs and answers a control envelope that failed
// verification; the job id is read unverified, as a hint for matching.
func (in *intake) controlRefused(envelope []byte, what api.ReceiptFor, err error) transport.ControlAnswer {
	reason := api.Reason(err)
	in.log.Warn("control message refused", "for", what, "reason", reason, "detail", err.Error(), "envelope_sha256", api.EnvelopeSHA256(envelope))
	a := in.controlReceipt(envelope, what, "", api.ReceiptRefused, reason, api.RefusalDetail(err))
	if what == api.ForSyncRequest {
		if id, err := api.UnverifiedRequestID(envelope); err == nil {
			a.Receipt.RequestID = id
		}
	} else if what != api.ForResultAcks { // a batch names no one job
		a.Receipt.JobID = peekJobID(envelope)
	}
	return a
}

func (in *intake) handleControl(ctx context.Context, envelope []byte) (transport.ControlAnswer, error) {
	typ, err := api.ControlType(envelope)
	if err != nil {
		// Not even a header to read, so no telling what it was meant to
		// be: a receipt's for could only guess.
		in.log.Warn("control message refused", "err", err, "envelope_sha256", api.EnvelopeSHA256(envelope))
		return transport.ControlAnswer{}, nil
	}
	switch typ {
	case api.TypeCancel:
		c, err := in.verifier.VerifyCancel(envelope)
		if err != nil {
			return in.controlRefused(envelope, api.ForCancel, err), nil
		}
		return in.cancel(ctx, envelope, c)
	case api.TypeResultAck:
		a, err := in.verifier.VerifyResultAck(envelope)
		if err != nil {
			return in.controlRefused(envelope, api.ForResultAck, err), nil
		}
		return in.resultAcked(ctx, envelope, a.JobID)
	case api.TypeResultAcks:
		a, err := in.verifier.VerifyResultAcks(envelope)
		if err != nil {
			return in.controlRefused(envelope, api.ForResultAcks, err), nil
		}
		return in.resultsAcked(ctx, a)
	case api.TypeSyncRequest:
		r, err := in.verifier.VerifySyncRequest(envelope)
		if err != nil {
			return in.controlRefused(envelope, api.ForSyncRequest, err), nil
		}
		in.log.Info("sync requested", "request_id", r.RequestID)
		return transport.ControlAnswer{SyncRequest: r.RequestID}, nil
	}
	// Perhaps a control message of a later edition: ignored, as
	// PROTOCOL.md promises older terminals do.
	in.log.Warn("control message of unknown type ignored", "typ", typ)
	return transport.ControlAnswer{}, nil
}

func (in *intake) cancel(ctx context.Context, envelope []byte, c *api.Cancel) (transport.ControlAnswer, error) {
	j, err := in.store.Head(ctx, c.JobID)
	if errors.Is(err, queue.ErrNotFound) {
		in.log.Info("cancel for an unknown job", "job", c.JobID)
		return in.controlReceipt(envelope, api.ForCancel, c.JobID, api.ReceiptRefused, api.ReasonUnknownJob, "this terminal holds no job "+c.JobID), nil
	}
	if err != nil {
		return transport.ControlAnswer{}, fmt.Errorf("cancel %s: %w", c.JobID, err)
	}
	switch j.State {
	case queue.Ready, queue.Received:
	case queue.Done:
		if j.Outcome == queue.Cancelled {
			return in.controlReceipt(envelope, api.ForCancel, c.JobID, api.ReceiptDuplicate, "", "already cancelled"), nil
		}
		in.log.Info("cancel too late", "job", c.JobID, "outcome", j.Outcome.String())
		return in.controlReceipt(envelope, api.ForCancel, c.JobID, api.ReceiptRefused, api.ReasonTooLate, "the job has ended: "+string(apiOutcome(j.Outcome))), nil
	default:
		// Being signed: the job's own outcome stands.
		in.log.Info("cancel too late", "job", c.JobID, "state", j.State.String())
		return in.controlReceipt(envelope, api.ForCancel, c.JobID, api.ReceiptRefused, api.ReasonTooLate, "the job is being signed"), nil
	}
	if err := in.complete.finish(ctx, j, queue.Cancelled, api.ReasonCancelled, c.Reason); err != nil {
		return transport.ControlAnswer{}, fmt.Errorf("cancel %s: %w", c.JobID, err)
	}
	in.jobsChanged(j.Signer)
	return transport.ControlAnswer{}, nil
}

func (in *intake) resultAcked(ctx context.Context, envelope []byte, jobID string) (transport.ControlAnswer, error) {
	first, err := in.store.AckResult(ctx, jobID)
	switch {
	case errors.Is(err, queue.ErrNotFound):
		// Pruned long ago, or never ours: the central side may be acking
		// from a stale ledger.
		in.log.Info("result acknowledgement for an unknown job", "job", jobID)
		return in.controlReceipt(envelope, api.ForResultAck, jobID, api.ReceiptRefused, api.ReasonUnknownJob, "this terminal holds no job "+jobID), nil
	case errors.Is(err, queue.ErrNoResult):
		in.log.Warn("result acknowledgement before the result", "job", jobID)
		return in.controlReceipt(envelope, api.ForResultAck, jobID, api.ReceiptRefused, api.ReasonNoResult, "job "+jobID+" has no result yet"), nil
	case err != nil:
		return transport.ControlAnswer{}, fmt.Errorf("result ack %s: %w", jobID, err)
	}
	if !first {
		return in.controlReceipt(envelope, api.ForResultAck, jobID, api.ReceiptDuplicate, "", "already acknowledged"), nil
	}
	in.metrics.lastDelivery.SetToCurrentTime()
	in.statusChanged()
	return transport.ControlAnswer{}, nil
}

// resultsAcked marks the results a ResultAcks names delivered, in one
// transaction. A valid batch gets no receipt, whatever it changed: the
// next Sync's results_undelivered says what is still held.
func (in *intake) resultsAcked(ctx context.Context, a *api.ResultAcks) (transport.ControlAnswer, error) {
	marked, err := in.store.AckResults(ctx, a.JobIDs)
	if err != nil {
		return transport.ControlAnswer{}, fmt.Errorf("result acks: %w", err)
	}
	if marked < len(a.JobIDs) {
		in.log.Debug("result acknowledgements that changed nothing", "acknowledged", len(a.JobIDs), "marked", marked)
	}
	if marked > 0 {
		in.metrics.lastDelivery.SetToCurrentTime()
		in.statusChanged()
	}
	return transport.ControlAnswer{}, nil
}

// Resend answers a SyncRequest after its Sync: every result without a
// ResultAck goes out again, and the receipt of every job held is built
// again from the store, one envelope read at a time.
func (in *intake) Resend(ctx context.Context) ([]api.Receipt, error) {
	in.resendAll()
	var out []api.Receipt
	for _, st := range []queue.State{queue.Received, queue.Ready, queue.Signing} {
		heads, err := in.store.ByStateHeads(ctx, st, 0)
		if err != nil {
			return out, fmt.Errorf("resend receipts: %w", err)
		}
		for _, h := range heads {
			out = append(out, api.Receipt{V: api.Version, Terminal: in.terminal, For: api.ForJob, JobID: h.ID,
				EnvelopeSHA256: hex.EncodeToString(h.EnvelopeSHA256[:]), Status: api.ReceiptStored, At: in.now()})
		}
	}
	return out, nil
}
