package daemon

import (
	"context"
	"errors"
	"time"

	"github.com/tekenid/teken/device"
)

// A part is one thing the terminal needs to take and sign letters: the
// store, the broker, the card service and its reader, intake. Each part's
// probe says what is wrong with it now, or nil. /readyz, the retained
// status, the metrics and the kiosk's idle screen all read the same
// probes (parts), so none of them can say "fine" about a part another one
// calls broken.
type partProblem struct {
	// part names the part, as /readyz and the status show it: store,
	// broker, pcscd, reader, intake.
	part string
	// detail says what is wrong, for IT (may quote an error).
	detail string
	// code is the kiosk catalogue code of what the official reads about
	// it, or "" when the official need not know.
	code string
}

// String is the /readyz line: "part: detail".
func (p partProblem) String() string { return p.part + ": " + p.detail }

// parts probes every part, in a fixed order, and returns the ones that
// are not ready.
func (d *Daemon) parts(ctx context.Context) []partProblem {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var out []partProblem
	for _, probe := range []func(context.Context) *partProblem{
		d.storeProblem, d.brokerProblem, d.cardServiceProblem, d.intakeProblem,
	} {
		if p := probe(ctx); p != nil {
			out = append(out, *p)
		}
	}
	return out
}

// readiness names every part that is not ready, one /readyz line each.
func (d *Daemon) readiness(ctx context.Context) []string {
	var out []string
	for _, p := range d.parts(ctx) {
		out = append(out, p.String())
	}
	return out
}

// storeProblem: the store must answer.
func (d *Daemon) storeProblem(ctx context.Context) *partProblem {
	st, err := d.store.Stats(ctx)
	if err != nil {
		return &partProblem{part: "store", detail: err.Error()}
	}
	// And have room: full is "full: <cause>", err_store_full.
	return fullProblem(st)
}

// brokerProblem: the broker connection must be up.
func (d *Daemon) brokerProblem(context.Context) *partProblem {
	// Up is not enough: a stalled broker keeps the connection open and
	// answers nothing (see brokerPartProblem in broker.go).
	return brokerPartProblem(d.term.Load())
}

// cardServiceProblem: pcscd must answer. It also keeps how many readers
// pcscd listed (-1 when it did not answer), for the kiosk, so one probe
// round asks pcscd once.
func (d *Daemon) cardServiceProblem(ctx context.Context) *partProblem {
	rs, err := d.tokens.Readers(ctx)
	n := int64(len(rs))
	if err != nil {
		n = -1
	}
	d.readers.Store(n)
	if err != nil {
		p := &partProblem{part: "pcscd", detail: err.Error()}
		if errors.Is(err, device.ErrPCSCUnavailable) {
			p.code = tokenMessage(err).Code
		}
		return p
	}
	return nil
}

// intakeProblem: intake must not be stuck retrying a message.
func (d *Daemon) intakeProblem(context.Context) *partProblem {
	if why := d.intake.retrying.reason(); why != "" {
		return &partProblem{part: "intake", detail: "retrying: " + why}
	}
	return nil
}
