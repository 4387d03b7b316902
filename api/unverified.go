package api

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
)

// UnverifiedJobID reads the job id of an envelope whose signature was not
// (or could not be) verified, so that a refusal Receipt can name the job it
// refuses. The id is only echoed back, never trusted: nothing is stored or
// signed on its account.
func UnverifiedJobID(raw []byte) (string, error) {
	return unverifiedID(raw, "job_id")
}

// UnverifiedRequestID is UnverifiedJobID for a SyncRequest's request_id:
// a hint for matching a refusal, never to be trusted.
func UnverifiedRequestID(raw []byte) (string, error) {
	return unverifiedID(raw, "request_id")
}

// UnverifiedPayload returns the payload of a compact JWS without checking
// its signature: for what an envelope's sender reads back of its own
// envelopes (the gateway, showing a letter it signed), and for the hints
// above. Nothing read this way may be trusted as from anyone else.
func UnverifiedPayload(raw []byte) ([]byte, error) {
	if len(raw) > envelopeLimit(hardMaxContent*2) {
		return nil, refuse(ReasonTooLarge, "%d bytes", len(raw))
	}
	// Only the payload segment: tekend reads this of every job envelope it
	// takes in, before verifying it, so a full JWS parse would be paid twice.
	parts := bytes.Split(raw, []byte("."))
	if len(parts) != 3 {
		return nil, refuse(ReasonMalformed, "not a compact JWS: %d segments, want 3", len(parts))
	}
	payload := make([]byte, base64.RawURLEncoding.DecodedLen(len(parts[1])))
	n, err := base64.RawURLEncoding.Decode(payload, parts[1])
	if err != nil {
		return nil, refuse(ReasonMalformed, "payload: %v", err)
	}
	return payload[:n], nil
}

func unverifiedID(raw []byte, member string) (string, error) {
	payload, err := UnverifiedPayload(raw)
	if err != nil {
		return "", err
	}
	var head map[string]json.RawMessage
	if err := json.Unmarshal(payload, &head); err != nil {
		return "", refuse(ReasonMalformed, "payload: %v", err)
	}
	var id string
	if err := json.Unmarshal(head[member], &id); err != nil {
		return "", refuse(ReasonMalformed, "%s: %v", member, err)
	}
	if err := ValidJobID(id); err != nil {
		return "", refuse(ReasonMalformed, "%s: %v", member, err)
	}
	return id, nil
}

// RefusalDetail returns what a receipt's detail says of err: a refusal's
// own detail (without the "refused: reason:" prefix its Error adds, since
// the receipt carries the reason beside it), else err's text, made safe.
func RefusalDetail(err error) string {
	var r *RefusalError
	if errors.As(err, &r) && r.Detail != "" {
		return r.Detail
	}
	return SanitizeDetail(err.Error())
}
