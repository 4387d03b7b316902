package ctl

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/route"
)

// RouteSummary is how 'tekenctl route' names the command.
const RouteSummary = "show the state of letters on their route from a router's ledger"

// RouteHelp is the help of 'tekenctl route'.
const RouteHelp = `Usage: tekenctl route --ledger FILE [--json] [--pdf FILE] [ROUTE]

Reads the ledger a central system's router keeps (package route) without
taking it over, so it may run beside the router. Without ROUTE it lists
every route: its state, the step under way and who holds it. With ROUTE it
shows each step: who, the kind of mark (paraf or ttd), the terminal, and
its state: pending, sent, signed (with when), or how it stopped the route
(rejected, expired, failed, cancelled, refused) with the reason.
--pdf writes the route's PDF as its last signed step returned it.

Examples:
  tekenctl route --ledger /var/lib/central/routes.ledger
  tekenctl route --ledger routes.ledger nota-dinas-7
  tekenctl route --ledger routes.ledger --json nota-dinas-7
  tekenctl route --ledger routes.ledger --pdf signed.pdf nota-dinas-7
`

// RouteOutput says how ShowRoutes prints.
type RouteOutput struct {
	JSON bool
	PDF  string // when set, the route's latest PDF is written there
}

// ShowRoutes prints the routes of a ledger, or one route's steps when id
// is set.
func ShowRoutes(ledger, id string, o RouteOutput, w io.Writer, now time.Time) error {
	all, err := route.ReadLedger(ledger)
	if err != nil {
		return err
	}
	if id == "" {
		if o.JSON {
			views := make([]RouteView, len(all))
			for i := range all {
				views[i] = NewRouteView(&all[i])
			}
			return writeIndented(w, views)
		}
		return WriteRoutesTable(w, all, now)
	}
	for i := range all {
		s := &all[i]
		if s.Route.ID != id {
			continue
		}
		if o.PDF != "" {
			if err := writeFileSync(o.PDF, s.PDF, true); err != nil {
				return fmt.Errorf("route %s: %w", id, err)
			}
		}
		if o.JSON {
			return writeIndented(w, NewRouteView(s))
		}
		return WriteRoute(w, s)
	}
	return fmt.Errorf("route %q: %w in %s", id, route.ErrUnknown, ledger)
}

// RouteView is a route's state as --json prints it: what a person or a
// script asks of it, without the PDFs and envelopes the ledger keeps.
type RouteView struct {
	ID        string     `json:"id"`
	Title     string     `json:"title"`
	Number    string     `json:"number"`
	Sender    string     `json:"sender"`
	State     string     `json:"state"`
	Current   int        `json:"current"` // 0-based; equal to len(steps) when done
	Steps     []StepView `json:"steps"`
	PDFBytes  int        `json:"pdf_bytes"`
	StartedAt time.Time  `json:"started_at"`
	UpdatedAt time.Time  `json:"updated_at"`
}

// StepView is one step of a RouteView.
type StepView struct {
	Kind     string         `json:"kind"`
	Signer   api.Signatory  `json:"signer"`
	Terminal string         `json:"terminal"`
	State    string         `json:"state"`
	JobID    string         `json:"job_id,omitempty"`
	SentAt   time.Time      `json:"sent_at,omitzero"`
	SignedAt time.Time      `json:"signed_at,omitzero"`
	EndedAt  time.Time      `json:"ended_at,omitzero"`
	Reason   api.ReasonCode `json:"reason,omitempty"`
	Detail   string         `json:"detail,omitempty"`
}

// NewRouteView makes the view of a route's state.
func NewRouteView(s *route.Status) RouteView {
	v := RouteView{ID: s.Route.ID, Title: s.Route.Title, Number: s.Route.Number, Sender: s.Route.Sender,
		State: string(s.State), Current: s.Current, PDFBytes: len(s.PDF), StartedAt: s.StartedAt, UpdatedAt: s.UpdatedAt}
	for _, st := range s.Steps {
		v.Steps = append(v.Steps, StepView{Kind: st.Kind, Signer: st.Signer, Terminal: st.Terminal, State: string(st.State),
			JobID: st.JobID, SentAt: st.SentAt, SignedAt: st.SignedAt, EndedAt: st.EndedAt, Reason: st.Reason, Detail: st.Detail})
	}
	return v
}

// WriteRoutesTable prints one line per route.
func WriteRoutesTable(w io.Writer, all []route.Status, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ROUTE\tSTATE\tSTEP\tWITH\tUPDATED\tTITLE")
	for i := range all {
		s := &all[i]
		step, with := "-", "-"
		if s.Current < len(s.Steps) {
			st := s.Steps[s.Current]
			step = fmt.Sprintf("%d/%d %s %s", s.Current+1, len(s.Steps), st.Kind, st.State)
			with = signerName(st.Signer) + " @ " + st.Terminal
		} else {
			step = fmt.Sprintf("%d/%d", len(s.Steps), len(s.Steps))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.Route.ID, s.State, step, with, Since(s.UpdatedAt, now), s.Route.Title)
	}
	if len(all) == 0 {
		fmt.Fprintln(tw, "(the ledger holds no route)")
	}
	return tw.Flush()
}

// WriteRoute prints a route's letter and one line per step.
func WriteRoute(w io.Writer, s *route.Status) error {
	fmt.Fprintf(w, "Route:   %s (%s)\n", s.Route.ID, routeState(s))
	fmt.Fprintf(w, "Letter:  %s, %s, from %s\n", s.Route.Number, s.Route.Title, s.Route.Sender)
	fmt.Fprintf(w, "PDF:     %d bytes, as of step %d\n\n", len(s.PDF), min(s.Current, len(s.Steps)))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STEP\tKIND\tSIGNER\tTERMINAL\tSTATE\tAT\tJOB\tREASON")
	for i, st := range s.Steps {
		at := st.SentAt
		switch {
		case st.State == route.StepSigned:
			at = st.SignedAt
		case !st.EndedAt.IsZero():
			at = st.EndedAt
		}
		when, job, reason := "-", "-", "-"
		if !at.IsZero() {
			when = at.Local().Format("2006-01-02 15:04:05")
		}
		if st.JobID != "" {
			job = st.JobID
		}
		if st.Reason != "" || st.Detail != "" {
			reason = reasonText(st.Reason, st.Detail)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", i+1, st.Kind, signerName(st.Signer), st.Terminal, st.State, when, job, reason)
	}
	return tw.Flush()
}

func routeState(s *route.Status) string {
	switch s.State {
	case route.RouteDone:
		return fmt.Sprintf("done: all %d steps signed", len(s.Steps))
	case route.RouteStopped:
		return fmt.Sprintf("stopped at step %d: %s", s.Current+1, s.Steps[s.Current].State)
	}
	return fmt.Sprintf("running: step %d of %d", s.Current+1, len(s.Steps))
}

// signerName is how a step's official is shown: name and NIP, or the
// start of the certificate hash when neither was given.
func signerName(s api.Signatory) string {
	switch {
	case s.Name != "" && s.NIP != "":
		return s.Name + " (" + s.NIP + ")"
	case s.Name != "":
		return s.Name
	case s.NIP != "":
		return s.NIP
	case len(s.CertSHA256) >= 12:
		return "cert " + s.CertSHA256[:12]
	}
	return "-"
}

func writeIndented(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
