package gateway

// The feed of changes, the delivery log, the fleet and readiness.

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

func (g *Gateway) deliveries(w http.ResponseWriter, r *http.Request, cl *client) *apiError {
	l, aerr := g.own(r, cl)
	if aerr != nil {
		return aerr
	}
	ds, err := g.store.Deliveries(r.Context(), l.ID)
	if err != nil {
		return g.storeFailure(err)
	}
	out := []DeliveryView{}
	for _, d := range ds {
		v := DeliveryView{ID: fmt.Sprintf("dlv_%d", d.ID), Endpoint: d.Endpoint, Seq: d.Event.Seq, State: d.Event.State,
			Attempts: d.Attempts, Delivered: d.Done, LastStatus: d.LastStatus, LastError: d.LastError}
		if d.Done {
			v.DoneAt = &d.DoneAt
		} else {
			v.NextAt = &d.NextAt
		}
		out = append(out, v)
	}
	writeJSON(w, http.StatusOK, map[string]any{"deliveries": out})
	return nil
}

// maxWait bounds a long poll of the feed.
const maxWait = 60 * time.Second

func (g *Gateway) events(w http.ResponseWriter, r *http.Request, cl *client) *apiError {
	q := r.URL.Query()
	var after uint64
	if s := q.Get("after"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return malformed("after %q: want the seq of the last event read", s)
		}
		after = v
	}
	var wait time.Duration
	if s := q.Get("wait"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 0 || v > int(maxWait/time.Second) {
			return malformed("wait %q: want 0 to %d seconds", s, int(maxWait/time.Second))
		}
		wait = time.Duration(v) * time.Second
	}
	limit := 100
	if s := q.Get("limit"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 || v > 1000 {
			return malformed("limit %q: want 1 to 1000", s)
		}
		limit = v
	}
	deadline := time.Now().Add(wait)
	for {
		changed := g.feed.changed()
		evs, err := g.store.Events(r.Context(), cl.id, after, limit)
		if err != nil {
			return g.storeFailure(err)
		}
		left := time.Until(deadline)
		if len(evs) > 0 || left <= 0 {
			out := struct {
				Events []EventView `json:"events"`
				Next   uint64      `json:"next"`
			}{Events: []EventView{}, Next: after}
			for _, ev := range evs {
				out.Events = append(out.Events, EventView{Seq: ev.Seq, LetterID: ev.LetterID, State: ev.State, Reason: ev.Reason, Detail: ev.Detail, At: ev.At})
				out.Next = ev.Seq
			}
			writeJSON(w, http.StatusOK, out)
			return nil
		}
		// Woken by a change here, or every second for one another
		// instance made.
		t := time.NewTimer(min(left, time.Second))
		select {
		case <-r.Context().Done():
			t.Stop()
			return nil
		case <-changed:
		case <-t.C:
		}
		t.Stop()
	}
}

func (g *Gateway) terminals(w http.ResponseWriter, _ *http.Request, cl *client) *apiError {
	out := []TerminalView{}
	for _, s := range g.fleet.all() {
		if !cl.allows(s.Terminal) {
			continue
		}
		out = append(out, TerminalView{Terminal: s.Terminal, State: s.State, Version: s.Version, Edition: s.Edition,
			TokenPresent: s.TokenPresent, JobsWaiting: s.JobsWaiting, ResultsUndelivered: s.ResultsUndelivered,
			LastError: s.LastError, Since: s.Since, SeenAt: s.SeenAt})
	}
	slices.SortFunc(out, func(a, b TerminalView) int { return strings.Compare(a.Terminal, b.Terminal) })
	writeJSON(w, http.StatusOK, map[string]any{"terminals": out})
	return nil
}

// readyz is 200 when the gateway can take letters and deliver them: the
// store answers and the broker is connected.
func (g *Gateway) readyz(w http.ResponseWriter, r *http.Request) {
	problems := map[string]string{}
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	if _, err := g.store.Counts(ctx); err != nil {
		problems["store"] = err.Error()
	}
	if !g.disp.Connected() {
		problems["broker"] = "not connected"
	} else if since, stalled := g.disp.Stalled(); stalled {
		problems["broker"] = "not answering since " + since.UTC().Format(time.RFC3339)
	}
	if len(problems) > 0 {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "unavailable", "problems": problems})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}
