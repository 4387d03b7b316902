package api

import (
	"errors"
	"fmt"
)

// ReasonCode is a machine-readable reason, carried in a refused Receipt and
// in a Result whose outcome is not signed. Integrators switch on it; Detail
// fields carry the human text.
type ReasonCode string

// Reasons a terminal refuses an envelope (Receipt status refused). Nothing
// refused is ever stored.
const (
	ReasonMalformed          ReasonCode = "malformed"           // not JSON / not a JWS / fields missing or invalid
	ReasonTooLarge           ReasonCode = "too_large"           // over a size limit, checked before parsing
	ReasonUnsupportedVersion ReasonCode = "unsupported_version" // "v" is not one this terminal speaks
	ReasonUnsupportedAlg     ReasonCode = "unsupported_alg"     // JWS alg is not ES256 or EdDSA
	ReasonWrongType          ReasonCode = "wrong_type"          // JWS typ names another message
	ReasonUnknownKID         ReasonCode = "unknown_kid"         // kid missing or not a trusted dispatcher key
	ReasonBadSignature       ReasonCode = "bad_signature"       // the JWS signature does not verify
	ReasonWrongTerminal      ReasonCode = "wrong_terminal"      // addressed to another terminal
	ReasonExpired            ReasonCode = "expired"             // past expires_at (beyond the skew)
	ReasonNotYetValid        ReasonCode = "not_yet_valid"       // before issued_at (beyond the skew)
	ReasonHashMismatch       ReasonCode = "hash_mismatch"       // a document's bytes do not hash to its sha256
	ReasonHashOnlyRefused    ReasonCode = "hash_only_refused"   // a document without bytes, not allowed here
	ReasonUnsupportedFormat  ReasonCode = "unsupported_format"  // a signature format this terminal cannot make
	ReasonStoreFull          ReasonCode = "store_full"          // the terminal's store has no room
	ReasonUnknownJob         ReasonCode = "unknown_job"         // a Cancel or ResultAck for a job the terminal does not hold
	ReasonConflict           ReasonCode = "conflict"            // a job id the terminal holds with another envelope
	ReasonTooLate            ReasonCode = "too_late"            // a Cancel for a job being signed or already ended
	ReasonNoResult           ReasonCode = "no_result"           // a ResultAck for a job that has no result yet
	ReasonDuplicate          ReasonCode = "duplicate"           // already stored; reported as Receipt status duplicate

	// ReasonUnsupportedMediaType: a document whose media type the
	// terminal's page cannot show, and the terminal does not accept
	// documents it cannot show (signing.allow_unrenderable_documents).
	ReasonUnsupportedMediaType ReasonCode = "unsupported_media_type"
)

// Reasons for a Result whose outcome is not signed. ReasonExpired also ends a
// stored job that nobody signed in time.
const (
	ReasonRejectedBySigner ReasonCode = "rejected_by_signer" // the official declined
	ReasonCancelled        ReasonCode = "cancelled"          // a Cancel arrived before signing
	ReasonPINBlocked       ReasonCode = "pin_blocked"        // the token's PIN is blocked
	ReasonTokenError       ReasonCode = "token_error"        // the token failed or was removed while signing
	ReasonWrongSigner      ReasonCode = "wrong_signer"       // the token's certificate is not the job's signer
	ReasonBadDocument      ReasonCode = "bad_document"       // a pades document is malformed, encrypted or certified against change
	ReasonInternal         ReasonCode = "internal"           // anything else on the terminal
)

// RefusalError is returned by the Verify and Decode functions when bytes
// from the wire are refused. Reason goes into the Receipt, and so can Detail:
// it always passes the detail rules (see SanitizeDetail). Error() adds a
// prefix and may be longer than MaxDetailLen.
type RefusalError struct {
	Reason ReasonCode
	Detail string
}

// Error returns the reason code and the detail.
func (e *RefusalError) Error() string {
	if e.Detail == "" {
		return "refused: " + string(e.Reason)
	}
	return "refused: " + string(e.Reason) + ": " + e.Detail
}

// Is makes errors.Is(err, &RefusalError{Reason: r}) match any refusal with
// reason r, so callers can test for one reason without a type switch.
func (e *RefusalError) Is(target error) bool {
	t, ok := target.(*RefusalError)
	return ok && t.Reason == e.Reason && t.Detail == ""
}

// refuse builds a *RefusalError with a formatted detail. The detail is
// sanitised (SanitizeDetail), since it may quote the refused bytes: it always
// fits a Receipt's detail.
func refuse(reason ReasonCode, format string, args ...any) *RefusalError {
	return &RefusalError{Reason: reason, Detail: SanitizeDetail(fmt.Sprintf(format, args...))}
}

// Reason returns the ReasonCode of a refusal anywhere in err's chain, or
// ReasonMalformed when err is some other error, or "" when err is nil.
func Reason(err error) ReasonCode {
	if err == nil {
		return ""
	}
	var r *RefusalError
	if errors.As(err, &r) {
		return r.Reason
	}
	return ReasonMalformed
}
