package daemon

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/device"
	"github.com/tekenid/teken/internal/version"
	"github.com/tekenid/teken/queue"
	"github.com/tekenid/teken/transport"
)

// mainLoop turns token events into page states, publishes the status, and
// pets the systemd watchdog only after the store has answered.
func (d *Daemon) mainLoop(ctx context.Context) error {
	defer d.flow.wait() // the revocation checks it started end with ctx
	period := watchdogPeriod()
	var watchdog <-chan time.Time
	if period > 0 {
		t := time.NewTicker(period)
		defer t.Stop()
		watchdog = t.C
	}
	minInterval := time.Duration(d.cfg.Status.MinInterval)
	statusTick := time.NewTicker(minInterval)
	defer statusTick.Stop()
	pending := true
	var lastStatus string
	heartbeat := time.Duration(d.cfg.Status.Heartbeat)
	lastSent := time.Now()
	events := d.tokens.Events()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-events:
			if !ok {
				return errors.New("token events ended")
			}
			d.flow.presence(ctx, ev)
		case reader := <-d.rearrive:
			d.flow.presence(ctx, device.Event{Kind: device.Arrived, Reader: reader, At: d.now()})
		case <-d.statusKick:
			pending = true
		case <-statusTick.C:
			// A part can fail without any event (pcscd dies, the disk
			// fills): the status is recomputed every tick and published
			// when anything in it changed.
			// One probe round feeds the status and the page, so both
			// say the same of the parts, and pcscd is asked once.
			problems := d.parts(ctx)
			beat := heartbeat > 0 && time.Since(lastSent) >= heartbeat
			line := d.publishStatus(d.statusFrom(problems), lastStatus, pending || beat)
			if line != lastStatus || pending || beat {
				lastSent = time.Now()
			}
			lastStatus, pending = line, false
			d.flow.partsChanged(d.kioskParts(problems))
		case <-watchdog:
			sctx, cancel := context.WithTimeout(ctx, period)
			_, err := d.store.Stats(sctx)
			cancel()
			if err != nil {
				d.log.Error("store does not answer; not petting the watchdog", "err", err)
				continue
			}
			d.notify.Watchdog()
		}
	}
}

// tokenBack hands the main loop a token that arrived while the flow was
// busy, to be read now; a newer one replaces none already waiting.
func (d *Daemon) tokenBack(reader string) {
	select {
	case d.rearrive <- reader:
	default:
	}
}

// statusChanged asks the main loop to publish the status at its next tick.
func (d *Daemon) statusChanged() {
	select {
	case d.statusKick <- struct{}{}:
	default:
	}
}

// publishStatus tells systemd what the terminal is doing and hands the
// status to sendStatus, when it changed since last (or force), and returns
// what it said. It never waits on the broker: the main loop must go on
// reading taps and petting the watchdog while the broker hangs.
func (d *Daemon) publishStatus(st api.Status, last string, force bool) string {
	line := statusLine(st)
	if line == last && !force {
		return last
	}
	if line != last {
		d.notify.Status(line)
	}
	d.statusOut.offer(st)
	return line
}

// statusTimeout bounds the wait for the broker's PUBACK of one status (the
// transport gives up sooner when brokerAnswerTimeout is shorter).
const statusTimeout = 10 * time.Second

// sendStatus publishes, retained, each status the main loop hands over,
// until ctx ends. A broker that hangs holds up only this goroutine, for at
// most statusTimeout per status; a newer status replaces one still
// waiting, so what goes out next is always the newest. A stalled broker
// gets the status all the same: it costs this goroutine one timeout, and
// its PUBACK, when the broker wakes, is what ends the stall.
func (d *Daemon) sendStatus(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case st := <-d.statusOut.ch:
			t := d.term.Load()
			if t == nil || !t.Connected() {
				continue // the Sync and status after the next connect tell it all
			}
			pctx, cancel := context.WithTimeout(ctx, statusTimeout)
			err := t.PublishStatus(pctx, st)
			cancel()
			if err != nil {
				d.log.Warn("publish status", "err", err)
			}
		}
	}
}

// latestStatus holds the newest status not yet sent.
type latestStatus struct{ ch chan api.Status }

func newLatestStatus() latestStatus { return latestStatus{ch: make(chan api.Status, 1)} }

// offer puts st in place of any status still waiting; it never blocks.
func (l latestStatus) offer(st api.Status) {
	for {
		select {
		case l.ch <- st:
			return
		default:
		}
		select {
		case <-l.ch:
		default:
		}
	}
}

// status is the terminal's health for the retained status message: the
// same facts as /readyz and the metrics. LastError names a part that is
// down now, else the last error seen.
// jobVersions are the versions of the Job tekend takes, as its status
// says them: v 1, and v 2 with its marks, anchors, jabatan and lock
// (trust.go sets api.Verifier.Marks).
var jobVersions = []int{api.Version, api.VersionMarks}

func (d *Daemon) status() api.Status {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return d.statusFrom(d.parts(ctx))
}

// statusFrom is the status with the parts' problems already probed.
func (d *Daemon) statusFrom(problems []partProblem) api.Status {
	st := api.Status{V: api.Version, Terminal: d.cfg.TerminalID, Version: version.String(), Since: d.now(),
		Versions: jobVersions}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if s, err := d.store.Stats(ctx); err == nil {
		st.JobsWaiting = s.Jobs[queue.Ready] + s.Jobs[queue.Received] + s.Jobs[queue.Signing]
		st.ResultsUndelivered = s.Undelivered
	}
	st.TokenPresent, _, _ = d.flow.tokenFacts()
	if e := d.lastErr.Load(); e != nil {
		st.LastError = *e
	}
	for _, p := range problems {
		// The broker's own state travels as online/offline.
		if p.part != "broker" {
			st.LastError = p.String()
			break
		}
	}
	// Errors quote what failed (a path, a broker's words): made safe for
	// the wire where the status is built.
	st.LastError = api.SanitizeDetail(st.LastError)
	return st
}

func statusLine(st api.Status) string {
	token := "no token"
	if st.TokenPresent {
		token = "token present"
	}
	line := fmt.Sprintf("%d letters waiting, %d results undelivered, %s", st.JobsWaiting, st.ResultsUndelivered, token)
	if st.LastError != "" {
		line += "; " + st.LastError
	}
	return line
}

func (d *Daemon) statusLine() string { return statusLine(d.status()) }

func (d *Daemon) setLastError(msg string) {
	d.lastErr.Store(&msg)
	d.statusChanged()
}

func (d *Daemon) publisher() resultPublisher {
	if t := d.term.Load(); t != nil {
		return t
	}
	return nil
}

func (d *Daemon) openTerminal() (*transport.Terminal, error) {
	b := d.cfg.Broker
	conn, err := BrokerConnection(d.cfg)
	if err != nil {
		return nil, err
	}
	conn.Logger, conn.AnswerTimeout = d.log, brokerAnswerTimeout
	t, err := transport.OpenTerminal(transport.TerminalConfig{
		Connection: conn, Root: b.TopicRoot, TerminalID: d.cfg.TerminalID,
		Handler: d.intake, Status: d.status, OnStall: d.brokerStallChanged,
		// Job envelopes are verified side by side and their store
		// transactions share fsyncs; acknowledgements keep arrival order.
		JobWorkers: intakeWorkers,
	})
	if err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	return t, nil
}
