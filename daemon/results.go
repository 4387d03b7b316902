package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/queue"
)

// ending is how one job ends: everything its Result says besides what the
// job itself names. Signed endings carry the certificate and the signed
// documents; the others a reason, and the official's or the dispatcher's
// words as detail.
type ending struct {
	outcome    queue.Outcome
	reason     api.ReasonCode
	detail     string
	signerCert []byte
	documents  []api.SignedDocument
	// hold keeps the Result from the outbox until a document that fell
	// short of signing.level reaches it (signing.require_level; held.go).
	hold bool
}

// results builds the Result of every ending — signed, rejected, expired,
// cancelled, failed — in one place, and encodes it once: the bytes it
// returns are what the store keeps and what the outbox publishes, every
// time.
type results struct {
	terminal string
	now      func() time.Time
}

// encode builds and encodes the Result of job j ending with e. The kid
// comes from what intake kept beside the job, so the envelope is never
// parsed again for it. The detail often quotes untrusted bytes (a PDF
// parser's error, an official's words): it is made valid here, where the
// Result is built, so a Result of Teken's never fails Teken's own
// validation — one that did would be retried forever and hold up
// everything behind it.
func (r results) encode(j queue.Job, e ending) ([]byte, error) {
	res := &api.Result{
		V: api.Version, JobID: j.ID, Terminal: r.terminal, KID: storedKID(j),
		Outcome: apiOutcome(e.outcome), Reason: e.reason, Detail: api.SanitizeDetail(e.detail), CompletedAt: r.now(),
		SignerCert: e.signerCert, Documents: e.documents,
	}
	for i := range res.Documents {
		res.Documents[i].TimestampError = api.SanitizeDetail(res.Documents[i].TimestampError)
		res.Documents[i].LevelError = api.SanitizeDetail(res.Documents[i].LevelError)
	}
	b, err := api.Encode(res)
	if err != nil && e.outcome != queue.Signed {
		// Nothing of an unsigned ending can be invalid but its words:
		// the outcome and reason go out without them rather than not
		// at all.
		res.Detail = ""
		b, err = api.Encode(res)
	}
	if err != nil {
		return nil, fmt.Errorf("encode result %s: %w", j.ID, err)
	}
	return b, nil
}

// storedKID is the dispatcher key id intake recorded for a job.
func storedKID(j queue.Job) string {
	var m struct {
		KID string `json:"kid"`
	}
	_ = json.Unmarshal(j.Meta, &m) // written by intake; an empty kid is the worst case
	return m.KID
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

// completer ends jobs: the Result is written in the same transaction that
// marks the job done, then the outbox and the status learn of it. Every
// path that ends a job — signing, rejection, cancellation, a document that
// cannot be signed — goes through complete; the sweeper's expiries go
// through expiryPayload, and are told after their commit by jobsExpired.
type completer struct {
	store   completionStore
	results results
	metrics *metrics
	log     *slog.Logger
	// resultStored tells the outbox a new result waits; statusChanged
	// asks the main loop to publish the status.
	resultStored, statusChanged func()
}

// completionStore is the part of the store that ends jobs.
type completionStore interface {
	Transition(ctx context.Context, id string, c queue.Change) (queue.Job, error)
}

var _ completionStore = (*queue.Store)(nil)

// complete ends job j with e. reason is what the audit log records.
func (c *completer) complete(ctx context.Context, j queue.Job, e ending, auditReason string) error {
	payload, err := c.results.encode(j, e)
	if err != nil {
		return err
	}
	if _, err := c.store.Transition(ctx, j.ID, queue.Change{To: queue.Done, Outcome: e.outcome, Reason: auditReason, Payload: payload, Hold: e.hold}); err != nil {
		return fmt.Errorf("complete %s: %w", j.ID, err)
	}
	c.metrics.jobsCompleted.WithLabelValues(e.outcome.String()).Inc()
	c.resultStored()
	c.statusChanged()
	return nil
}

// finish ends a job that was not signed, with reason and detail in its
// Result; the audit log records both.
func (c *completer) finish(ctx context.Context, j queue.Job, outcome queue.Outcome, reason api.ReasonCode, detail string) error {
	why := string(reason)
	if detail != "" {
		// The official's own words go into the audit log too.
		why += ": " + detail
	}
	return c.complete(ctx, j, ending{outcome: outcome, reason: reason, detail: detail}, why)
}

// expiryPayload is the Result of a job the store's sweeper expires, written
// in the sweeper's own transaction (queue.Options.ExpiryPayload). Nobody
// is told here: the transaction has not committed yet. The outbox, the
// metrics and the page hear of the expiry once it has (jobsExpired,
// queue.Options.OnExpired).
func (c *completer) expiryPayload(j queue.Job) []byte {
	b, err := c.results.encode(j, ending{outcome: queue.Expired, reason: api.ReasonExpired})
	if err != nil {
		// Cannot happen: an expiry carries nothing that can be invalid.
		c.log.Error("encode expiry result", "job", j.ID, "err", err)
	}
	return b
}
