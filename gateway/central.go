package gateway

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/gateway/store"
	"github.com/tekenid/teken/transport"
)

// The gateway speaks the MQTT contract through transport.Dispatcher; this
// file is where the dispatcher's news becomes changes of letters in the
// store, each durable before the dispatcher acknowledges anything.

// jobsOf lets the dispatcher find in the store what a terminal's Sync
// may show it lacks. Put and Remove have nothing to do: a letter is in
// the store from its submission, and its state says whether it is still
// on its way.
type jobsOf struct{ s store.Store }

var _ transport.JobStore = jobsOf{}

func (j jobsOf) Put(context.Context, transport.PendingJob) error { return nil }
func (j jobsOf) Remove(context.Context, string, string) error    { return nil }
func (j jobsOf) Pending(ctx context.Context, terminal string) ([]transport.PendingJob, error) {
	ls, err := j.s.Unfinished(ctx, terminal, time.Now())
	if err != nil {
		return nil, err
	}
	out := make([]transport.PendingJob, 0, len(ls))
	for _, l := range ls {
		if l.CancelAsked {
			continue // withdrawn: never offered again
		}
		out = append(out, transport.PendingJob{Terminal: l.Terminal, JobID: l.ID, ExpiresAt: l.ExpiresAt, Envelope: l.Envelope})
	}
	return out, nil
}

// resultsOf tells the dispatcher which results the store already holds,
// so a result sent again is acknowledged again and handled once.
type resultsOf struct{ s store.Store }

var _ transport.ResultStore = resultsOf{}

func (r resultsOf) Seen(ctx context.Context, terminal, jobID string) (bool, error) {
	l, err := r.s.Get(ctx, jobID)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return l.Terminal == terminal && l.Result != nil, nil
}

func (r resultsOf) Add(context.Context, string, string) error { return nil } // OnResult stored it

// outcomeState is the letter state of a terminal's outcome.
var outcomeState = map[api.Outcome]store.State{
	api.OutcomeSigned: store.Signed, api.OutcomeRejected: store.Rejected, api.OutcomeExpired: store.Expired,
	api.OutcomeCancelled: store.Cancelled, api.OutcomeFailed: store.Failed,
}

// onResult stores a terminal's result with the letter; the dispatcher
// acknowledges it to the terminal only once this returned nil.
func (g *Gateway) onResult(ctx context.Context, r *api.Result) error {
	raw, err := api.Encode(r)
	if err != nil {
		return fmt.Errorf("result of %s: %w", r.JobID, err)
	}
	st, ok := outcomeState[r.Outcome]
	if !ok {
		return fmt.Errorf("result of %s: outcome %q", r.JobID, r.Outcome)
	}
	l, err := g.store.Change(ctx, r.JobID, func(l *store.Letter) (bool, error) {
		if l.Terminal != r.Terminal {
			return false, fmt.Errorf("result of %s from %s: the letter went to %s", r.JobID, r.Terminal, l.Terminal)
		}
		if l.Result != nil {
			return false, nil // stored before: the terminal sent it again
		}
		l.Result = raw
		if l.State.Final() {
			// Cancelled here while it was queued, and published all the
			// same: the terminal's word is kept beside the state.
			return true, nil
		}
		l.State, l.Reason, l.Detail = st, string(r.Reason), r.Detail
		return true, nil
	})
	switch {
	case errors.Is(err, store.ErrNotFound):
		g.metrics.unknownResults.Inc()
		// Another central system's, or sent by hand (tekenctl
		// dispatch): the terminal keeps it for them.
		g.log.Warn("result for a letter this gateway does not hold: not acknowledged", "job", r.JobID, "terminal", r.Terminal)
		return fmt.Errorf("letter %s: %w", r.JobID, transport.ErrNotMine)
	case err != nil:
		return err
	}
	g.metrics.results.WithLabelValues(string(r.Outcome)).Inc()
	g.log.Info("result stored", "letter", l.ID, "terminal", l.Terminal, "outcome", r.Outcome)
	g.feed.wake()
	return nil
}

// onReceipt records what the terminal did with a letter's job or cancel.
func (g *Gateway) onReceipt(ctx context.Context, r *api.Receipt) {
	if r.JobID == "" {
		g.log.Warn("receipt without a job id", "terminal", r.Terminal, "status", r.Status, "reason", r.Reason)
		return
	}
	rc := store.Receipt{For: string(r.For), Status: string(r.Status), Reason: string(r.Reason), Detail: r.Detail, At: time.Now().UTC()}
	if rc.For == "" {
		rc.For = string(api.ForJob)
	}
	_, err := g.store.Change(ctx, r.JobID, func(l *store.Letter) (bool, error) {
		if l.Terminal != r.Terminal {
			return false, nil
		}
		if len(l.Receipts) >= maxReceipts {
			l.Receipts = l.Receipts[1:]
		}
		l.Receipts = append(l.Receipts, rc)
		if rc.For == string(api.ForJob) && !l.State.Final() {
			switch r.Status {
			case api.ReceiptStored, api.ReceiptDuplicate:
				if l.State != store.Stored {
					l.State = store.Stored
				}
			case api.ReceiptRefused:
				l.State, l.Reason, l.Detail = store.Refused, string(r.Reason), r.Detail
			}
		}
		return true, nil
	})
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		g.log.Error("store a receipt", "letter", r.JobID, "err", err)
		return
	}
	g.feed.wake()
}

// maxReceipts bounds the receipts kept with one letter: a terminal
// answers every re-send.
const maxReceipts = 20

// publishQueued publishes the letters that are queued, until ctx ends:
// at once when a letter is submitted (kick), and every few seconds for
// what failed or what another instance left behind.
func (g *Gateway) publishQueued(ctx context.Context) error {
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for {
		if g.disp.Connected() {
			if err := g.publishSome(ctx); err != nil && ctx.Err() == nil {
				g.log.Warn("publish queued letters", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-g.kick:
		case <-tick.C:
		}
	}
}

// publishLease is how long an instance holds a queued letter while it
// publishes it.
const publishLease = 30 * time.Second

func (g *Gateway) publishSome(ctx context.Context) error {
	for {
		now := time.Now()
		ls, err := g.store.ClaimQueued(ctx, now, now.Add(publishLease), 32)
		if err != nil || len(ls) == 0 {
			return err
		}
		// Side by side, each waiting for its own PUBACK: one at a time,
		// a backlog would go at one round trip per letter.
		errs := make([]error, len(ls))
		var wg sync.WaitGroup
		for i, l := range ls {
			wg.Go(func() { errs[i] = g.publishLetter(ctx, l) })
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return err
		}
	}
}

func (g *Gateway) publishLetter(ctx context.Context, l *store.Letter) error {
	pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	err := g.disp.PublishEnvelope(pctx, transport.PendingJob{Terminal: l.Terminal, JobID: l.ID, ExpiresAt: l.ExpiresAt, Envelope: l.Envelope})
	if err != nil {
		return fmt.Errorf("letter %s: %w", l.ID, err)
	}
	var cancelled bool
	_, err = g.store.Change(ctx, l.ID, func(l *store.Letter) (bool, error) {
		if l.State == store.Cancelled {
			cancelled = true // withdrawn while it was being published
			return false, nil
		}
		if l.State != store.Queued {
			return false, nil // a receipt came first
		}
		l.State = store.Sent
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("letter %s published: %w", l.ID, err)
	}
	if cancelled {
		if err := g.disp.Cancel(pctx, l.Terminal, l.ID, "withdrawn by the letter system"); err != nil {
			return fmt.Errorf("letter %s: cancel: %w", l.ID, err)
		}
	}
	g.metrics.published.Inc()
	g.feed.wake()
	return nil
}

// requestSyncs asks every terminal with a letter on its way for a Sync
// and what it holds, each time the gateway's broker session was lost
// (resync): receipts and results published while no session of the
// gateway existed are gone from the broker, and only a SyncRequest
// brings receipts back.
func (g *Gateway) requestSyncs(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-g.resync:
		}
		terminals, err := g.unfinishedTerminals(ctx)
		if err != nil {
			g.log.Warn("terminals to ask for a sync", "err", err)
			continue
		}
		for _, t := range terminals {
			rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			if _, err := g.disp.RequestSync(rctx, t); err != nil {
				g.log.Warn("sync request", "terminal", t, "err", err)
			} else {
				g.log.Info("sync requested: the broker session was new", "terminal", t)
			}
			cancel()
		}
	}
}

// unfinishedTerminals are the terminals of letters sent or stored.
func (g *Gateway) unfinishedTerminals(ctx context.Context) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	for _, st := range []store.State{store.Sent, store.Stored} {
		q := store.Query{State: st, Limit: store.MaxPage}
		for {
			page, err := g.store.List(ctx, q)
			if err != nil {
				return nil, err
			}
			for _, l := range page.Letters {
				if !seen[l.Terminal] {
					seen[l.Terminal] = true
					out = append(out, l.Terminal)
				}
			}
			if page.Next == "" {
				break
			}
			q.After = page.Next
		}
	}
	return out, nil
}
