package api

import (
	"encoding/json"

	jose "github.com/go-jose/go-jose/v4"
)

// UnverifiedJobID reads the job id of an envelope whose signature was not
// (or could not be) verified, so that a refusal Receipt can name the job it
// refuses. The id is only echoed back, never trusted: nothing is stored or
// signed on its account.
func UnverifiedJobID(raw []byte) (string, error) {
	if len(raw) > envelopeLimit(hardMaxContent*2) {
		return "", refuse(ReasonTooLarge, "%d bytes", len(raw))
	}
	sig, err := jose.ParseSignedCompact(string(raw), allowedAlgs)
	if err != nil {
		return "", refuse(ReasonMalformed, "not a compact JWS: %v", err)
	}
	var head struct {
		JobID string `json:"job_id"`
	}
	if err := json.Unmarshal(sig.UnsafePayloadWithoutVerification(), &head); err != nil {
		return "", refuse(ReasonMalformed, "payload: %v", err)
	}
	if err := ValidJobID(head.JobID); err != nil {
		return "", refuse(ReasonMalformed, "job_id: %v", err)
	}
	return head.JobID, nil
}
