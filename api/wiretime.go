package api

import (
	"encoding/json"
	"time"
)

// TimeLayout is how every time of the contract is written: UTC, exactly
// three fraction digits, "Z" — what JavaScript's Date.toISOString, Java's
// DateTimeFormatter.ISO_INSTANT for millisecond instants and PHP's
// DATE_RFC3339_EXTENDED ("Y-m-d\TH:i:s.vP", which wants exactly three
// digits and reads "Z" since PHP 8.0) all read and write. Go's default,
// RFC 3339 with up to nine digits, is refused by PHP's createFromFormat.
// Readers accept any RFC 3339 time (see docs/PROTOCOL.md).
const TimeLayout = "2006-01-02T15:04:05.000Z"

// wireTime writes a time in TimeLayout; the fraction past milliseconds is
// cut, not rounded, so a time never moves into the next second.
type wireTime time.Time

// MarshalJSON writes t as a JSON string in TimeLayout.
func (t wireTime) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, len(TimeLayout)+2)
	b = append(b, '"')
	b = time.Time(t).UTC().AppendFormat(b, TimeLayout)
	return append(b, '"'), nil
}

// Each message writes its times through wireTime: a field of the outer
// struct hides the embedded one with the same JSON name (encoding/json's
// rule for the shallower field), and the alias types have no methods, so
// there is no recursion.

type jobAlias Job

// MarshalJSON writes the job with its times in TimeLayout.
func (j Job) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		jobAlias
		IssuedAt  wireTime `json:"issued_at"`
		ExpiresAt wireTime `json:"expires_at"`
	}{jobAlias(j), wireTime(j.IssuedAt), wireTime(j.ExpiresAt)})
}

type cancelAlias Cancel

// MarshalJSON writes the cancel with its times in TimeLayout.
func (c Cancel) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		cancelAlias
		IssuedAt  wireTime `json:"issued_at"`
		ExpiresAt wireTime `json:"expires_at"`
	}{cancelAlias(c), wireTime(c.IssuedAt), wireTime(c.ExpiresAt)})
}

type resultAckAlias ResultAck

// MarshalJSON writes the acknowledgement with its times in TimeLayout.
func (a ResultAck) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		resultAckAlias
		IssuedAt  wireTime `json:"issued_at"`
		ExpiresAt wireTime `json:"expires_at"`
	}{resultAckAlias(a), wireTime(a.IssuedAt), wireTime(a.ExpiresAt)})
}

type resultAcksAlias ResultAcks

// MarshalJSON writes the acknowledgements with their times in TimeLayout.
func (a ResultAcks) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		resultAcksAlias
		IssuedAt  wireTime `json:"issued_at"`
		ExpiresAt wireTime `json:"expires_at"`
	}{resultAcksAlias(a), wireTime(a.IssuedAt), wireTime(a.ExpiresAt)})
}

type syncRequestAlias SyncRequest

// MarshalJSON writes the sync request with its times in TimeLayout.
func (r SyncRequest) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		syncRequestAlias
		IssuedAt  wireTime `json:"issued_at"`
		ExpiresAt wireTime `json:"expires_at"`
	}{syncRequestAlias(r), wireTime(r.IssuedAt), wireTime(r.ExpiresAt)})
}

type receiptAlias Receipt

// MarshalJSON writes the receipt with its times in TimeLayout.
func (r Receipt) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		receiptAlias
		At wireTime `json:"at"`
	}{receiptAlias(r), wireTime(r.At)})
}

type resultAlias Result

// MarshalJSON writes the result with its times in TimeLayout.
func (r Result) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		resultAlias
		CompletedAt wireTime `json:"completed_at"`
	}{resultAlias(r), wireTime(r.CompletedAt)})
}

type signedDocumentAlias SignedDocument

// MarshalJSON writes the signed document with its times in TimeLayout.
func (d SignedDocument) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		signedDocumentAlias
		SignedAt wireTime `json:"signed_at"`
	}{signedDocumentAlias(d), wireTime(d.SignedAt)})
}

type statusAlias Status

// MarshalJSON writes the status with its times in TimeLayout.
func (s Status) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		statusAlias
		Since wireTime `json:"since"`
	}{statusAlias(s), wireTime(s.Since)})
}

type syncAlias Sync

// MarshalJSON writes the sync with its times in TimeLayout.
func (s Sync) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		syncAlias
		At wireTime `json:"at"`
	}{syncAlias(s), wireTime(s.At)})
}
