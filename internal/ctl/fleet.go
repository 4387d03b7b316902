package ctl

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"sync"
	"text/tabwriter"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/tekenid/teken/api"
)

// Fleet holds the latest retained Status of every terminal, kept current
// by a plain (clean-session, read-only) subscription: it never takes
// results or publishes anything.
type Fleet struct {
	client paho.Client
	root   string

	mu      sync.Mutex
	status  map[string]api.Status
	last    time.Time // when the last status message (or the SUBACK) came
	invalid int
}

// OpenFleet connects and subscribes to every terminal's status topic.
func OpenFleet(ctx context.Context, s Settings) (*Fleet, error) {
	conn, err := s.Connection(randomClientID("tekenctl-fleet"))
	if err != nil {
		return nil, err
	}
	f := &Fleet{root: s.TopicRoot(), status: map[string]api.Status{}}
	o := pahoOptions(conn).SetCleanSession(true).SetAutoReconnect(true).
		SetOnConnectHandler(func(c paho.Client) {
			// Subscribing again after a reconnect brings the retained
			// messages again.
			c.Subscribe(api.AllTerminals(f.root, api.KindStatus), 1, f.handle)
		})
	f.client = paho.NewClient(o)
	if err := wait(ctx, f.client.Connect()); err != nil {
		return nil, fmt.Errorf("fleet: connect: %w", err)
	}
	// The connect handler's subscription runs on its own; this one is
	// waited for, so the retained messages are on their way once it returns.
	if err := wait(ctx, f.client.Subscribe(api.AllTerminals(f.root, api.KindStatus), 1, f.handle)); err != nil {
		f.client.Disconnect(100)
		return nil, fmt.Errorf("fleet: subscribe: %w", err)
	}
	f.mu.Lock()
	f.last = time.Now()
	f.mu.Unlock()
	return f, nil
}

func wait(ctx context.Context, tok paho.Token) error {
	select {
	case <-tok.Done():
		return tok.Error()
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (f *Fleet) handle(_ paho.Client, m paho.Message) {
	terminal, kind, err := api.ParseTopic(f.root, m.Topic())
	f.mu.Lock()
	defer f.mu.Unlock()
	f.last = time.Now()
	if err != nil || kind != api.KindStatus {
		return
	}
	if len(m.Payload()) == 0 {
		delete(f.status, terminal) // a cleared retained status
		return
	}
	s, err := api.DecodeStatus(m.Payload())
	if err != nil || s.Terminal != terminal {
		f.invalid++
		return
	}
	f.status[terminal] = *s
}

// Settle waits until no status message came for quiet (the retained ones
// arrive in a burst after subscribing), or ctx ends.
func (f *Fleet) Settle(ctx context.Context, quiet time.Duration) error {
	tick := time.NewTicker(quiet / 4)
	defer tick.Stop()
	for {
		f.mu.Lock()
		idle := time.Since(f.last)
		f.mu.Unlock()
		if idle >= quiet {
			return nil
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Snapshot returns the terminals' status, sorted by terminal id, and how
// many invalid status messages were dropped.
func (f *Fleet) Snapshot() ([]api.Status, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]api.Status, 0, len(f.status))
	for _, s := range f.status {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Terminal < out[j].Terminal })
	return out, f.invalid
}

// Close disconnects.
func (f *Fleet) Close() { f.client.Disconnect(250) }

// WriteFleetTable prints one line per terminal.
func WriteFleetTable(w io.Writer, fleet []api.Status, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TERMINAL\tSTATE\tSINCE\tVERSION\tTOKEN\tJOBS\tUNDELIVERED\tLAST ERROR")
	for _, s := range fleet {
		token := "-"
		if s.TokenPresent {
			token = "yes"
		}
		lastErr := s.LastError
		if lastErr == "" {
			lastErr = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\n", s.Terminal, s.State, Since(s.Since, now),
			s.Version, token, s.JobsWaiting, s.ResultsUndelivered, lastErr)
	}
	if len(fleet) == 0 {
		fmt.Fprintln(tw, "(no terminal has published a status)")
	}
	return tw.Flush()
}

// WriteFleetJSON prints the fleet as one JSON array.
func WriteFleetJSON(w io.Writer, fleet []api.Status) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(fleet)
}

// Since says how long ago t was, briefly, with the time itself.
func Since(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t)
	var ago string
	switch {
	case d < 0:
		ago = "in the future"
	case d < time.Minute:
		ago = fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		ago = fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		ago = fmt.Sprintf("%dh%02dm ago", int(d.Hours()), int(d.Minutes())%60)
	default:
		ago = fmt.Sprintf("%dd ago", int(d.Hours()/24))
	}
	return t.Local().Format("2006-01-02 15:04") + " (" + ago + ")"
}
