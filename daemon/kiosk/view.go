package kiosk

import (
	"errors"
	"slices"
	"time"
)

// State is what the terminal is doing, as the page shows it.
type State string

// The states of the page. Document view and PIN entry are local to the page,
// over StateToken.
const (
	StateIdle    State = "idle"    // no token: "tap your token"
	StateReading State = "reading" // a token arrived; its certificate is being read
	StateToken   State = "token"   // a token is present: the signer's letters
	StateSigning State = "signing" // signing a batch: "keep your token on the reader"
	StateDone    State = "done"    // a batch finished
)

// View is the whole state the page renders. It never holds a PIN.
type View struct {
	State  State   `json:"state"`
	Lang   string  `json:"lang"`
	Signer *Signer `json:"signer,omitempty"`
	Jobs   []Job   `json:"jobs"`
	// JobsTotal counts every letter waiting for the signer; Jobs lists
	// the most urgent of them, at most a hundred.
	JobsTotal int       `json:"jobs_total"`
	CanSign   bool      `json:"can_sign"`
	MaxBatch  int       `json:"max_batch"`
	TriesLeft *int      `json:"tries_left,omitempty"`
	Progress  *Progress `json:"progress,omitempty"`
	Result    *Outcome  `json:"result,omitempty"`
	// Error explains why signing is not possible now (certificate expired,
	// PIN blocked, …) or what went wrong last.
	Error *Message `json:"error,omitempty"`
	// Notice is a non-blocking remark, such as letters left after a removal.
	Notice *Message `json:"notice,omitempty"`
	// Parts says what the terminal lacks now, from the same probes as
	// /readyz: the card service, a reader, the connection to the central
	// system, room in the store. Empty when every part is ready. The page
	// shows it on the idle screen, the letters and the done screen.
	Parts []Message `json:"parts,omitempty"`
	// Unavailable: no token can be used now (the card service is down,
	// no reader is connected, the store does not answer). The idle screen
	// then says why instead of asking for a tap.
	Unavailable bool `json:"unavailable,omitempty"`
	// Boot names the tekend process that published the view; the Server
	// sets it. A page that sees another boot than its own fetches its
	// session token again (GET /api/session), so it works on across a
	// restart without a reload.
	Boot string `json:"boot,omitempty"`
}

// Signer is the official whose token is present.
type Signer struct {
	Name       string    `json:"name"`
	NIP        string    `json:"nip,omitempty"`
	CertSHA256 string    `json:"cert_sha256"`
	NotAfter   time.Time `json:"not_after"`
}

// Job is one letter waiting for the present signer.
type Job struct {
	ID         string    `json:"id"`
	Title      string    `json:"title"`
	Number     string    `json:"number,omitempty"`
	Sender     string    `json:"sender,omitempty"`
	ReceivedAt time.Time `json:"received_at"`
	ExpiresAt  time.Time `json:"expires_at"`
	// Fields are the job's further label/value pairs, in the job's order;
	// never null, empty for a job without any.
	Fields    []Field    `json:"fields"`
	Documents []Document `json:"documents"`
}

// Field is one further label and value of a letter, shown with it.
type Field struct {
	Label string `json:"label"`
	Value string `json:"value"`
}

// Document is one document of a letter.
type Document struct {
	Index     int    `json:"index"`
	Name      string `json:"name,omitempty"`
	MediaType string `json:"media_type"`
	SHA256    string `json:"sha256"`
	Size      int64  `json:"size"`
	// Available says the job carries the bytes, so the page can show them.
	Available bool `json:"available"`
	// Renderable says the page can show the document (Renderable of its
	// media type).
	Renderable bool `json:"renderable"`
	// Viewed says the page fetched the document in this token session.
	// The official signs a letter only once every available, renderable
	// document of it was viewed (CodeNotViewed).
	Viewed bool `json:"viewed"`
	// Format is the signature asked for: cms, raw or pades.
	Format string `json:"format"`
	// Block is where a signed PDF's visible signature block will stand.
	Block *Block `json:"block,omitempty"`
}

// renderable are the media types the page shows itself: PDF with pdf.js,
// images in an img element, plain text as text. Anything else the page can
// only offer as a download, and what you see would not be what you sign.
var renderable = []string{"application/pdf", "image/png", "image/jpeg", "image/gif", "image/webp", "text/plain"}

// Renderable reports whether the page shows documents of mediaType, a
// lower-case type/subtype without parameters as the wire contract has it.
func Renderable(mediaType string) bool { return slices.Contains(renderable, mediaType) }

// RenderableTypes lists the media types Renderable accepts, for messages
// that say what the terminal shows.
func RenderableTypes() []string { return slices.Clone(renderable) }

// Block is a rectangle on a page, in PDF points from the bottom left.
type Block struct {
	Page int        `json:"page"` // 1-based
	Rect [4]float64 `json:"rect"` // x1, y1, x2, y2
}

// Progress counts the signatures of the batch in flight.
type Progress struct {
	Done  int `json:"done"`
	Total int `json:"total"`
}

// Outcome summarises a finished batch.
type Outcome struct {
	Signed   int `json:"signed"`
	Rejected int `json:"rejected,omitempty"`
	Left     int `json:"left,omitempty"`
}

// Message is a text of the catalogue, by id, with its parameters.
type Message struct {
	Code   string            `json:"code"`
	Params map[string]string `json:"params,omitempty"`
}

// UserError is an error the official reads: a catalogue id and parameters.
// Errors of any other type reach the page as err_internal.
type UserError struct {
	Message
	Err error // the cause, for logs; never shown
}

// NewUserError wraps cause as the catalogue message code.
func NewUserError(code string, cause error, params map[string]string) *UserError {
	return &UserError{Message: Message{Code: code, Params: params}, Err: cause}
}

func (e *UserError) Error() string {
	if e.Err != nil {
		return e.Code + ": " + e.Err.Error()
	}
	return e.Code
}

func (e *UserError) Unwrap() error { return e.Err }

// messageOf returns what the official is told about err.
func messageOf(err error) Message {
	var ue *UserError
	if errors.As(err, &ue) {
		return ue.Message
	}
	return Message{Code: CodeInternal}
}

// Catalogue ids of the errors an official reads.
const (
	CodeWrongPIN        = "err_wrong_pin"
	CodeLastAttempt     = "err_last_attempt"
	CodePINBlocked      = "err_pin_blocked"
	CodeTokenRemoved    = "err_token_removed"
	CodeNoToken         = "err_no_token"
	CodeCardBusy        = "err_card_busy"
	CodeNoReader        = "err_no_reader"
	CodePCSC            = "err_pcscd"
	CodeCertExpired     = "err_cert_expired"
	CodeCertNotYetValid = "err_cert_not_yet_valid"
	CodeCertUsage       = "err_cert_usage"
	CodeCertUntrusted   = "err_cert_untrusted"
	CodeSlotEmpty       = "err_slot_empty"
	CodeUnsupported     = "err_unsupported"
	CodeJobGone         = "err_job_gone"
	CodeBatchTooLarge   = "err_batch_too_large"
	CodeStoreFull       = "err_store_full"
	CodeInternal        = "err_internal"
	CodeSignedPartial   = "signed_partial"
	// CodeNotViewed: a letter chosen for signing has a document the page
	// has not fetched in this token session, with {title}: the official
	// opens every document of a letter before signing it. Refused before
	// the PIN is verified, so no try is spent.
	CodeNotViewed = "err_not_viewed"
	// CodeUnrenderable: the page could not show a document. The page
	// says it itself; tekend never answers with it.
	CodeUnrenderable = "err_unrenderable"
	// CodeTokenNotSetUp: IT has not finished the token's enrolment (a
	// factory PIN or PUK, no valid attestation); the reason is for IT, in
	// tekend's log and status, not on the page.
	CodeTokenNotSetUp = "err_token_not_set_up"
	// CodeCertRevoked: the certificate, or a CA above it, is revoked,
	// with {date}; CodeCertStatusUnknown: its CA's responder does not
	// know it; CodeCertStatusUnavailable: its status could not be had and
	// the terminal requires it (revocation.check = require);
	// CodeCertChecking: the status is still being fetched. All before the
	// PIN.
	CodeCertRevoked           = "err_cert_revoked"
	CodeCertStatusUnknown     = "err_cert_status_unknown"
	CodeCertStatusUnavailable = "err_cert_status_unavailable"
	CodeCertChecking          = "err_cert_checking"
)

// Catalogue ids of the requests the kiosk refuses itself, with 400.
const (
	// CodeBadRequest: a body or URL the page never sends (not JSON of the
	// request's shape, an unknown member, a wrong type, a bad job id, too
	// many ids, too large).
	CodeBadRequest = "err_bad_request"
	// CodePINFormat: a PIN that is not 6 to 8 letters or digits.
	CodePINFormat = "err_pin_format"
	// CodeReasonInvalid: a reject reason holding a character the Result
	// cannot carry (invalid UTF-8, a control or format character, U+2028,
	// U+2029, a tag character).
	CodeReasonInvalid = "err_reason_invalid"
	// CodeReasonTooLong: a reject reason over the limit, with {n}.
	CodeReasonTooLong = "err_reason_too_long"
)

// ErrorCodes lists every code above, for the catalogue test.
var ErrorCodes = []string{
	CodeWrongPIN, CodeLastAttempt, CodePINBlocked, CodeTokenRemoved, CodeNoToken,
	CodeCardBusy, CodeNoReader, CodePCSC, CodeCertExpired, CodeCertNotYetValid,
	CodeCertUsage, CodeCertUntrusted, CodeSlotEmpty, CodeUnsupported, CodeJobGone,
	CodeBatchTooLarge, CodeInternal, CodeSignedPartial,
	CodeBadRequest, CodePINFormat, CodeReasonInvalid, CodeReasonTooLong,
	CodeStoreFull, CodeNotViewed, CodeUnrenderable, CodeTokenNotSetUp,
	CodeCertRevoked, CodeCertStatusUnknown, CodeCertStatusUnavailable, CodeCertChecking,
}

// Catalogue ids of what the page says about the terminal itself.
const (
	// CodeOffline: the terminal is not connected to the central system.
	// Letters already here can still be signed; new letters and results
	// wait for the connection.
	CodeOffline = "info_offline"
	// CodeSessionStale: a state change carried a CSRF token the kiosk does
	// not know, in practice one of the tekend before a restart (403). The
	// page fetches the new token and asks the official to try again.
	CodeSessionStale = "err_session_stale"
)

// TerminalCodes lists the codes of the block above, for the catalogue test.
var TerminalCodes = []string{CodeOffline, CodeSessionStale}
