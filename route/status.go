package route

import (
	"slices"
	"time"

	"github.com/tekenid/teken/api"
)

// StepState is where one step stands.
type StepState string

// The step states. The last five end the route.
const (
	StepPending   StepState = "pending" // not reached, or its job not yet taken by the broker
	StepSent      StepState = "sent"
	StepSigned    StepState = "signed"
	StepRejected  StepState = StepState(api.OutcomeRejected)
	StepExpired   StepState = StepState(api.OutcomeExpired)
	StepFailed    StepState = StepState(api.OutcomeFailed)
	StepCancelled StepState = StepState(api.OutcomeCancelled)
	StepRefused   StepState = "refused" // the terminal refused the job envelope (a receipt)
)

func (s StepState) stops() bool {
	switch s {
	case StepRejected, StepExpired, StepFailed, StepCancelled, StepRefused:
		return true
	}
	return false
}

// RouteState is where a route stands.
type RouteState string

// The route states.
const (
	RouteRunning RouteState = "running"
	RouteDone    RouteState = "done"    // every step signed
	RouteStopped RouteState = "stopped" // a step ended otherwise
)

// StepStatus is a step and how far it went.
type StepStatus struct {
	Step
	State     StepState      `json:"state"`
	JobID     string         `json:"job_id,omitempty"`
	ExpiresAt time.Time      `json:"expires_at,omitzero"`
	SentAt    time.Time      `json:"sent_at,omitzero"`
	SignedAt  time.Time      `json:"signed_at,omitzero"` // when the central side took the result
	EndedAt   time.Time      `json:"ended_at,omitzero"`  // when it stopped the route
	Reason    api.ReasonCode `json:"reason,omitempty"`
	Detail    string         `json:"detail,omitempty"`
	// Envelope is the current step's job as published; dropped once the
	// step ends.
	Envelope []byte `json:"envelope,omitempty"`

	seq uint64 // when its job was recorded, to list pending jobs oldest first
}

// Status is a route's progress.
type Status struct {
	Route     Route        `json:"route"`
	State     RouteState   `json:"state"`
	Current   int          `json:"current"` // the step under way; len(Steps) when done
	Steps     []StepStatus `json:"steps"`
	PDF       []byte       `json:"pdf"` // as the last signed step returned it, or the route's own
	StartedAt time.Time    `json:"started_at"`
	UpdatedAt time.Time    `json:"updated_at"`
}

func newStatus(r *Route, at time.Time) *Status {
	s := &Status{Route: *r, State: RouteRunning, PDF: r.PDF, StartedAt: at, UpdatedAt: at}
	s.Steps = make([]StepStatus, len(r.Steps))
	for i, st := range r.Steps {
		s.Steps[i] = StepStatus{Step: st, State: StepPending}
	}
	return s
}

// clone copies what a caller could change; byte slices are never changed
// in place, so they are shared.
func (s *Status) clone() Status {
	c := *s
	c.Route.Fields = slices.Clone(s.Route.Fields)
	c.Route.Steps = slices.Clone(s.Route.Steps)
	c.Steps = slices.Clone(s.Steps)
	return c
}
