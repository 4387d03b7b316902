package validation

import (
	"fmt"
	"strings"
	"time"

	"github.com/tekenid/teken/api"
)

// Status is a verdict, in the words of ETSI EN 319 102-1: VALID,
// INDETERMINATE (intact, but the signer's trust is not established: an
// unknown CA, no revocation data, an expired certificate without a
// timestamp) or INVALID.
type Status string

// The verdicts.
const (
	StatusValid         Status = "VALID"
	StatusIndeterminate Status = "INDETERMINATE"
	StatusInvalid       Status = "INVALID"
)

// rank orders the verdicts; anything unknown ranks as INVALID, so that a
// status never filled in never reads as valid.
func rank(s Status) int {
	switch s {
	case StatusValid:
		return 2
	case StatusIndeterminate:
		return 1
	}
	return 0
}

// worse returns the lower of two verdicts.
func worse(a, b Status) Status {
	if rank(b) < rank(a) {
		return b
	}
	return a
}

// The names of the checks, in the order a SignatureVerdict lists them.
const (
	CheckIntegrity  = "integrity"  // the signature value and the digest or byte range
	CheckChain      = "chain"      // the signer to the CAs given, at the best signature time
	CheckRevocation = "revocation" // the signer's status at the signing time, and from where
	CheckTimestamp  = "timestamp"  // a signature (or document) timestamp: genTime, authority, trust
	CheckLevel      = "level"      // the baseline level reached
)

// Check is one step of judging a signature.
type Check struct {
	Name   string `json:"name"`
	Status Status `json:"status"`
	Detail string `json:"detail,omitempty"`
}

// Verdict is the outcome of checking one file: a document against its
// signature, or a signed PDF with every signature in it. Its JSON is what
// `tekenctl verify --json` prints, one object a line (docs/TEKENCTL.md).
type Verdict struct {
	Document   string     `json:"file"`                  // the file checked
	DocumentID string     `json:"document_id,omitempty"` // the result's document id
	Format     api.Format `json:"format"`
	Status     Status     `json:"status"` // the worst of the signatures and the file's own checks
	// Reason says what is wrong with the file as a whole: no signature
	// for it in the result, a signed PDF that is not the document as
	// dispatched, a PDF that cannot be read.
	Reason     string             `json:"reason,omitempty"`
	Signatures []SignatureVerdict `json:"signatures"`
}

// SignatureVerdict is the outcome of checking one signature.
type SignatureVerdict struct {
	Field  string `json:"field,omitempty"`  // the PDF signature field
	Kind   string `json:"kind"`             // signature, or document-timestamp in a PDF
	Status Status `json:"status"`           // the worst of Checks
	Reason string `json:"reason,omitempty"` // why it is not VALID
	Signer string `json:"signer,omitempty"` // certificate CN
	NIP    string `json:"nip,omitempty"`    // certificate serialNumber
	// SigningTime is what the signer claims: the signing-time attribute
	// (cms), the result's signed_at (raw), the signature dictionary's /M
	// (pades).
	SigningTime *time.Time `json:"signing_time,omitempty"`
	// TimestampTime is the genTime of a verified RFC 3161 timestamp.
	TimestampTime *time.Time `json:"timestamp_time,omitempty"`
	// Level is the baseline level reached: B-B, B-T, B-LT or B-LTA
	// (pades), B-B, B-T or B-LT (cms); empty for a raw signature, a
	// document timestamp or a signature that did not verify.
	Level     string `json:"level,omitempty"`
	ByteRange []int  `json:"byte_range,omitempty"` // pades
	// CoversWholeFile says nothing follows what a PDF signature signs.
	CoversWholeFile *bool `json:"covers_whole_file,omitempty"`
	// Checks are integrity, chain, revocation, timestamp and level, in
	// that order (a document timestamp has no revocation or level).
	Checks []Check `json:"checks,omitempty"`
}

// Valid reports whether the file and every signature in it are VALID.
func (v Verdict) Valid() bool { return v.Status == StatusValid && len(v.Signatures) > 0 }

// Check returns the check of that name, or false.
func (s SignatureVerdict) Check(name string) (Check, bool) {
	for _, c := range s.Checks {
		if c.Name == name {
			return c, true
		}
	}
	return Check{}, false
}

// fail lowers the verdict for a reason of the file's own.
func (v *Verdict) fail(s Status, format string, args ...any) {
	v.Status = worse(v.Status, s)
	why := fmt.Sprintf(format, args...)
	if v.Reason != "" {
		why = v.Reason + "; " + why
	}
	v.Reason = why
}

// settle sets the status from the signatures (at best the file's own).
func (v *Verdict) settle() {
	if len(v.Signatures) == 0 {
		v.Status = StatusInvalid
		return
	}
	for _, s := range v.Signatures {
		v.Status = worse(v.Status, s.Status)
	}
}

// checks collects the checks of one signature.
type checks []Check

func (cs *checks) add(name string, s Status, format string, args ...any) {
	*cs = append(*cs, Check{Name: name, Status: s, Detail: fmt.Sprintf(format, args...)})
}

// settle sets sv's checks, its status as the worst of them, and its
// reason from those that are not VALID.
func (cs checks) settle(sv *SignatureVerdict) {
	sv.Checks = cs
	sv.Status = StatusValid
	var why []string
	for _, c := range cs {
		sv.Status = worse(sv.Status, c.Status)
		if c.Status != StatusValid && c.Detail != "" && c.Detail != notChecked {
			why = append(why, c.Detail)
		}
	}
	sv.Reason = strings.Join(why, "; ")
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// stamp is how a time shows in a check's detail.
func stamp(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") }
