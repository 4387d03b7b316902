package api

import "time"

// Version is the major version of the wire contract, carried as "v" in every
// message. A decoder refuses any other value; see docs/PROTOCOL.md for what
// may change within one version.
const Version = 1

// VersionMarks is the Job's second version (v 2): a pades document's
// mark (paraf or ttd), its placement by anchor text, the signer's
// position (jabatan) in the block, and certification of the document by
// its last signer. Every other message keeps v 1; a terminal that speaks
// v 2 says so in its Status (versions).
const VersionMarks = 2

// Edition is the edition of v1 this package speaks. An edition only adds:
// fields of terminal messages, control messages a terminal of an older
// edition ignores, receipts and reason codes. Edition 2 adds the
// SyncRequest, receipts for control messages, the conflict refusal and the
// Sync's trigger and session_present. Edition 3 adds the levels B-LT and
// B-LTA, a level for cms documents, and level_error. Edition 4 adds
// ResultAcks, one acknowledgement for many results. Edition 5 adds the
// Status's versions, the versions of the Job the terminal takes. A
// terminal names its edition in its Status.
const Edition = 5

// Format names how a document's signature is encoded.
type Format string

// The signature formats. A pades document must be a PDF (application/pdf)
// with its bytes; the terminal returns the signed PDF itself. signature/cms
// and signature/pades make and check them.
const (
	FormatCMS   Format = "cms"   // CMS SignedData, detached, CAdES-BES attributes
	FormatRaw   Format = "raw"   // the bare signature over the document's SHA-256
	FormatPAdES Format = "pades" // the signed PDF itself: PAdES baseline B-B, or B-T with a timestamp
)

// Outcome is how a job ended on the terminal. Every accepted job ends in
// exactly one outcome.
type Outcome string

// The outcomes of a job.
const (
	OutcomeSigned    Outcome = "signed"
	OutcomeRejected  Outcome = "rejected"
	OutcomeExpired   Outcome = "expired"
	OutcomeCancelled Outcome = "cancelled"
	OutcomeFailed    Outcome = "failed"
)

// ReceiptStatus says what the terminal did with a job envelope.
type ReceiptStatus string

// The receipt statuses. ReceiptDuplicate is an acceptance: the job was
// already stored, and the broker's redelivery was dropped.
const (
	ReceiptStored    ReceiptStatus = "stored"
	ReceiptDuplicate ReceiptStatus = "duplicate"
	ReceiptRefused   ReceiptStatus = "refused"
)

// State is the terminal's connection state in a Status message.
type State string

// The terminal states. StateOffline is what the broker publishes as the
// terminal's last will.
const (
	StateOnline  State = "online"
	StateOffline State = "offline"
)

// Signatory names the official who must sign a job. The terminal offers the
// job only to a token whose certificate hashes to CertSHA256.
type Signatory struct {
	CertSHA256 string `json:"cert_sha256"`    // SHA-256 of the signer certificate's DER, lowercase hex
	NIP        string `json:"nip,omitempty"`  // subject serial number (NIP / NIK), for display only
	Name       string `json:"name,omitempty"` // for display only
	// Jabatan is the signer's position, written in the visible block
	// under the name ("Kepala Dinas Komunikasi dan Informatika"); v 2.
	Jabatan string `json:"jabatan,omitempty"`
}

// Field is one extra label and value the kiosk shows with a job.
type Field struct {
	Label string `json:"label"`
	Value string `json:"value"`
}

// Document is one document of a job. Content carries the bytes the official
// sees; the terminal hashes them itself and refuses the job when SHA256 does
// not match. A document without Content is a hash-only document.
type Document struct {
	ID        string `json:"id"`                // unique within the job
	Name      string `json:"name"`              // file name or title shown to the official
	MediaType string `json:"media_type"`        // e.g. "application/pdf"
	SHA256    string `json:"sha256"`            // of the bytes, lowercase hex
	Size      int64  `json:"size,omitempty"`    // bytes; must equal len(Content) when both are given
	Content   []byte `json:"content,omitempty"` // standard base64 in JSON
	Format    Format `json:"format,omitempty"`  // requested signature format; empty means cms
	// Visible asks for a visible signature block; pades only.
	Visible *Visible `json:"visible,omitempty"`
	// Certify makes this signature the document's certification (DocMDP,
	// permissions 2: form filling and signatures only), so that any later
	// change but a signature shows as tampering; pades, mark ttd, v 2.
	Certify bool `json:"certify,omitempty"`
}

// Visible places the visible signature block of a pades document: the
// official's name and NIP, the date and time, "Ditandatangani secara
// elektronik oleh" and a QR code of VerifyURL.
type Visible struct {
	// Page is 1-based; 0 or absent means the last page. With Anchor, it
	// names the only page searched (0: every page).
	Page      int       `json:"page,omitempty"`
	Rect      []float64 `json:"rect,omitempty"`       // x1, y1, x2, y2 in PDF points; absent means bottom right
	VerifyURL string    `json:"verify_url,omitempty"` // encoded in the QR code
	// Mark is what the block is (v 2): MarkTTD, the full block (the
	// default), or MarkParaf, a small initials block.
	Mark Mark `json:"mark,omitempty"`
	// Anchor places the block at a text in the page content instead of
	// Rect (v 2).
	Anchor *Anchor `json:"anchor,omitempty"`
	// Initials are what a paraf shows instead of the signer's name, e.g.
	// "SR" (v 2); absent: the name's initials.
	Initials string `json:"initials,omitempty"`
}

// Mark is the kind of visible mark a signature makes.
type Mark string

// The marks of v 2.
const (
	MarkTTD   Mark = "ttd"   // tanda tangan: the signature that issues the letter
	MarkParaf Mark = "paraf" // the initials of one who drafted or checked it
)

// Anchor finds where a block goes by a text in the page content, as
// letter systems mark it ("^", "#", "${ttd_kepala}").
type Anchor struct {
	Text string `json:"text"`
	// Occurrence is which one (1-based, in page order, then reading
	// order); 0 or absent means the first.
	Occurrence int `json:"occurrence,omitempty"`
	// Offset moves the block's lower left corner from the anchor text's
	// lower left corner, in points (dx, dy); absent: no offset.
	Offset []float64 `json:"offset,omitempty"`
	// Size is the block's width and height in points; absent: the
	// default size of its mark.
	Size []float64 `json:"size,omitempty"`
}

// Job asks one terminal to have one official sign one or more documents. It
// travels as the payload of a JWS signed by a dispatcher key (SignJob,
// VerifyJob), on the terminal's jobs topic.
type Job struct {
	V         int        `json:"v"`
	JobID     string     `json:"job_id"`   // ULID or UUID chosen by the central system
	Terminal  string     `json:"terminal"` // terminal slug, see ValidTerminalID
	IssuedAt  time.Time  `json:"issued_at"`
	ExpiresAt time.Time  `json:"expires_at"`
	Signer    Signatory  `json:"signer"`
	Title     string     `json:"title"`            // perihal
	Number    string     `json:"number"`           // nomor surat
	Sender    string     `json:"sender"`           // pengirim / dari
	Fields    []Field    `json:"fields,omitempty"` // further display fields, in order
	Documents []Document `json:"documents"`
}

// Cancel withdraws a job that has not been signed yet. It travels as a JWS on
// the terminal's control topic.
type Cancel struct {
	V         int       `json:"v"`
	JobID     string    `json:"job_id"`
	Terminal  string    `json:"terminal"`
	IssuedAt  time.Time `json:"issued_at"`
	ExpiresAt time.Time `json:"expires_at"`
	Reason    string    `json:"reason,omitempty"` // free text for the audit log
}

// ResultAck tells the terminal that the central system has stored the result
// of a job, so the terminal may stop re-sending it. It travels as a JWS on the
// terminal's control topic.
type ResultAck struct {
	V         int       `json:"v"`
	JobID     string    `json:"job_id"`
	Terminal  string    `json:"terminal"`
	IssuedAt  time.Time `json:"issued_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// ResultAcks acknowledges the results of many jobs of one terminal in one
// signed message, as that many ResultAcks would: a central system draining
// a backlog pays one signature, and the terminal one verification and one
// store transaction, per batch. It travels as a JWS on the terminal's
// control topic. Edition 4 of v1: the central side sends it only to a
// terminal whose Status names edition 4 or later (an older one would log
// it as a control message of unknown type and keep re-sending).
type ResultAcks struct {
	V         int       `json:"v"`
	Terminal  string    `json:"terminal"`
	JobIDs    []string  `json:"job_ids"` // 1 to MaxResultAcks distinct job ids
	IssuedAt  time.Time `json:"issued_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// MaxResultAcks bounds the job ids of one ResultAcks: 1,000 ids of at most
// 36 characters keep the envelope near 50 KB, far under MaxMessageBytes.
const MaxResultAcks = 1000

// SyncRequest asks a terminal to answer at once with a Sync and to publish
// again every result it holds without a ResultAck and the receipt of every
// job it holds: a central system that lost its broker session or its
// recent data recovers with it. It travels as a JWS on the terminal's
// control topic. Edition 2 of v1; an older terminal ignores it.
type SyncRequest struct {
	V         int       `json:"v"`
	Terminal  string    `json:"terminal"`
	RequestID string    `json:"request_id"` // ULID or UUID, echoed in the Sync that answers
	IssuedAt  time.Time `json:"issued_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// ReceiptFor names the message a Receipt answers.
type ReceiptFor string

// What a Receipt answers. An absent for (older terminals) means a job.
const (
	ForJob         ReceiptFor = "job"
	ForCancel      ReceiptFor = "cancel"
	ForResultAck   ReceiptFor = "result_ack"
	ForResultAcks  ReceiptFor = "result_acks" // edition 4
	ForSyncRequest ReceiptFor = "sync_request"
)

// Receipt tells the central system what the terminal did with an envelope
// it received: for a job, whether it was stored (published after the job is
// on disk, or at once when refused); for a control message, only when it
// was refused or changed nothing (a Cancel that worked ends in a cancelled
// Result, a ResultAck that worked in silence, a SyncRequest in a Sync).
// Receipts are advice, best-effort: a Sync says what the terminal holds.
type Receipt struct {
	V              int           `json:"v"`
	Terminal       string        `json:"terminal"`
	For            ReceiptFor    `json:"for,omitempty"`        // absent (older terminals) means job
	JobID          string        `json:"job_id,omitempty"`     // empty when the envelope was too broken to name one
	RequestID      string        `json:"request_id,omitempty"` // for a sync_request, when it could be read
	EnvelopeSHA256 string        `json:"envelope_sha256"`      // of the raw envelope bytes, to match a refusal without a job id
	Status         ReceiptStatus `json:"status"`
	Reason         ReasonCode    `json:"reason,omitempty"` // set when refused
	Detail         string        `json:"detail,omitempty"`
	// StoredEnvelopeSHA256 names the envelope the terminal holds under
	// this job id, with reason conflict.
	StoredEnvelopeSHA256 string `json:"stored_envelope_sha256,omitempty"`
	// Resent marks a receipt published again on a SyncRequest.
	Resent bool      `json:"resent,omitempty"`
	At     time.Time `json:"at"`
}

// SignedDocument is the signature of one document in a Result. For format
// pades, Signature is the whole signed PDF: the document as sent, with the
// signature appended as an incremental update.
type SignedDocument struct {
	ID        string    `json:"id"`
	SHA256    string    `json:"sha256"`
	Format    Format    `json:"format"`
	Signature []byte    `json:"signature"` // standard base64 in JSON
	SignedAt  time.Time `json:"signed_at"`
	// Level is the baseline level reached: for pades (always set) B-B,
	// B-T (timestamped), B-LT (with validation data) or B-LTA (with a
	// document timestamp); for cms, from edition 3, B-T or B-LT when the
	// terminal took it beyond B-B (absent means B-B). Never for raw.
	Level string `json:"level,omitempty"`
	// TimestampError says why a configured timestamp authority gave no
	// timestamp, so the signature stayed B-B; pades and cms.
	TimestampError string `json:"timestamp_error,omitempty"`
	// LevelError says why the signature did not reach the level the
	// terminal is configured for (edition 3): the timestamp, the
	// revocation data or the document timestamp that could not be had.
	LevelError string `json:"level_error,omitempty"`
}

// Result is the outcome of one job, published on the results topic until a
// ResultAck for the job arrives. The central system drops duplicates by
// JobID.
type Result struct {
	V           int              `json:"v"`
	JobID       string           `json:"job_id"`
	Terminal    string           `json:"terminal"`
	KID         string           `json:"kid,omitempty"` // dispatcher key that signed the job
	Outcome     Outcome          `json:"outcome"`
	Reason      ReasonCode       `json:"reason,omitempty"` // set for every outcome but signed
	Detail      string           `json:"detail,omitempty"`
	SignerCert  []byte           `json:"signer_cert,omitempty"` // DER, standard base64 in JSON; set when signed
	Documents   []SignedDocument `json:"documents,omitempty"`   // set when signed, one per job document
	CompletedAt time.Time        `json:"completed_at"`
}

// Status is the terminal's health, published retained on the status topic;
// the broker publishes the offline form as the terminal's last will.
type Status struct {
	V                  int       `json:"v"`
	Terminal           string    `json:"terminal"`
	State              State     `json:"state"`
	Version            string    `json:"version"` // software version of the terminal
	TokenPresent       bool      `json:"token_present"`
	JobsWaiting        int       `json:"jobs_waiting"`
	ResultsUndelivered int       `json:"results_undelivered"`
	LastError          string    `json:"last_error,omitempty"`
	Since              time.Time `json:"since"` // when State last changed
	// Edition is the edition of v1 the terminal speaks (see Edition);
	// absent from terminals before edition 2.
	Edition int `json:"edition,omitempty"`
	// Versions are the versions of the Job the terminal takes (edition
	// 5): [1], or [1, 2] once it speaks the Job of v 2 (VersionMarks).
	// Absent means [1].
	Versions []int `json:"versions,omitempty"`
}

// Sync lists what the terminal holds. It is published on every connect so the
// central system can re-send jobs a broker dropped and re-acknowledge results
// whose ResultAck was lost.
type Sync struct {
	V                  int       `json:"v"`
	Terminal           string    `json:"terminal"`
	At                 time.Time `json:"at"`
	JobsWaiting        []string  `json:"jobs_waiting"`        // job ids stored and not yet ended, being signed included
	ResultsUndelivered []string  `json:"results_undelivered"` // job ids whose result awaits a ResultAck
	// Trigger says why this Sync went out: after a connect (once the
	// backlog the broker kept was taken in), on the interval timer, or in
	// answer to a SyncRequest. Absent from terminals before edition 2.
	Trigger SyncTrigger `json:"trigger,omitempty"`
	// RequestID echoes the SyncRequest this Sync answers.
	RequestID string `json:"request_id,omitempty"`
	// SessionPresent, on a connect Sync, says whether the broker kept the
	// terminal's session (MQTT CONNACK session present): when false, the
	// broker lost every job it queued for the terminal.
	SessionPresent *bool `json:"session_present,omitempty"`
	// Truncated says a list was cut at MaxSyncIDs: the terminal holds more
	// than it can list, and the central side must not re-send anything on
	// this Sync.
	Truncated bool `json:"truncated,omitempty"`
}

// SyncTrigger says why a Sync was published.
type SyncTrigger string

// The Sync triggers.
const (
	SyncOnConnect  SyncTrigger = "connect"
	SyncOnInterval SyncTrigger = "interval"
	SyncOnRequest  SyncTrigger = "request"
)

// TakesJobVersion reports whether the terminal of this status takes jobs
// of version v.
func (s *Status) TakesJobVersion(v int) bool {
	if len(s.Versions) == 0 {
		return v == Version
	}
	for _, have := range s.Versions {
		if have == v {
			return true
		}
	}
	return false
}
