package api

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"time"
	"unicode/utf8"
)

// Limits of v1 that do not depend on a terminal's configuration. The JSON
// Schemas under api/schema state the same numbers.
const (
	MaxTextLen       = 512       // characters of a title, number, sender, name, label or value (see Text rules)
	MaxDetailLen     = 1024      // characters of a detail, reason text, timestamp error or last error
	MaxFields        = 32        // display fields per job
	MaxDocuments     = 100       // documents per job
	MaxSignatureLen  = 64 << 10  // bytes of one signature
	MaxCertLen       = 16 << 10  // bytes of the signer certificate
	MaxSyncIDs       = 10000     // job ids in each list of a Sync
	MaxMessageBytes  = 1 << 20   // a Receipt, Status, Sync, Cancel, ResultAck, ResultAcks or SyncRequest on the wire
	MaxResultBytes   = 48 << 20  // a Result on the wire; a pades result carries signed PDFs
	MaxSignedPDFLen  = 32 << 20  // bytes of one signed PDF in a pades result
	MaxVersionLen    = 64        // characters of Status.Version
	maxDocumentIDLen = 64        //
	maxKIDLen        = 128       //
	hardMaxContent   = 256 << 20 // no configuration may raise the content limit past this
)

var (
	documentIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	mediaTypePattern  = regexp.MustCompile(`^[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$`)
	kidPattern        = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)
)

// ValidJobID reports whether id is a job id in canonical form: a ULID in
// upper case (26 Crockford base32 characters) or a UUID in lower case
// (8-4-4-4-12 hex). One canonical form per id keeps duplicate detection a
// plain string comparison.
func ValidJobID(id string) error {
	if isULID(id) || isUUID(id) {
		return nil
	}
	return fmt.Errorf("job id %q: want an upper-case ULID or a lower-case UUID", id)
}

func malformed(field string, err error) *RefusalError {
	return refuse(ReasonMalformed, "%s: %v", field, err)
}

func checkVersion(v int) error {
	if v != Version {
		return refuse(ReasonUnsupportedVersion, "v is %d, want %d", v, Version)
	}
	return nil
}

func checkPattern(field, value string, re interface{ MatchString(string) bool }, want string) error {
	if !re.MatchString(value) {
		return refuse(ReasonMalformed, "%s %q: want %s", field, truncate(value), want)
	}
	return nil
}

func checkTime(field string, t time.Time) error {
	if t.IsZero() {
		return refuse(ReasonMalformed, "%s is required", field)
	}
	if t.Year() < 2000 || t.Year() > 9999 {
		return refuse(ReasonMalformed, "%s %s is out of range", field, t.Format(time.RFC3339))
	}
	return nil
}

func checkHeader(v int, jobID, terminal string) error {
	if err := checkVersion(v); err != nil {
		return err
	}
	if err := ValidJobID(jobID); err != nil {
		return malformed("job_id", err)
	}
	if err := ValidTerminalID(terminal); err != nil {
		return malformed("terminal", err)
	}
	return nil
}

func checkWindow(issued, expires time.Time) error {
	if err := checkTime("issued_at", issued); err != nil {
		return err
	}
	if err := checkTime("expires_at", expires); err != nil {
		return err
	}
	if !expires.After(issued) {
		return refuse(ReasonMalformed, "expires_at %s is not after issued_at %s", expires.Format(time.RFC3339), issued.Format(time.RFC3339))
	}
	return nil
}

// truncate shortens s to at most 80 bytes, cut at a character boundary, for
// quoting in a refusal.
func truncate(s string) string {
	if len(s) <= 80 {
		return s
	}
	n := 80
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// Validate checks the job's fields: required fields, id formats, text
// limits, the time window's order, and each document's declared hash against
// its bytes. It does not check the window against a clock, the content limit
// of a terminal or whether hash-only documents are allowed: Verifier does.
func (j *Job) Validate() error {
	v := j.V
	if v == VersionMarks {
		v = Version // the same header; the fields of v 2 are checked below
	}
	if err := checkHeader(v, j.JobID, j.Terminal); err != nil {
		return err
	}
	if j.V == Version {
		if field := j.marksField(); field != "" {
			return refuse(ReasonMalformed, "%s is a field of v %d: send the job as v %d", field, VersionMarks, VersionMarks)
		}
	}
	if err := checkText("signer.jabatan", j.Signer.Jabatan, false, MaxTextLen); err != nil {
		return err
	}
	if err := checkWindow(j.IssuedAt, j.ExpiresAt); err != nil {
		return err
	}
	if err := checkPattern("signer.cert_sha256", j.Signer.CertSHA256, sha256Form, "64 lower-case hex digits"); err != nil {
		return err
	}
	for _, t := range []struct {
		field, value string
		required     bool
	}{
		{"signer.nip", j.Signer.NIP, false},
		{"signer.name", j.Signer.Name, false},
		{"title", j.Title, true},
		{"number", j.Number, true},
		{"sender", j.Sender, true},
	} {
		if err := checkText(t.field, t.value, t.required, MaxTextLen); err != nil {
			return err
		}
	}
	if len(j.Fields) > MaxFields {
		return refuse(ReasonMalformed, "%d fields, limit %d", len(j.Fields), MaxFields)
	}
	for i, f := range j.Fields {
		if err := checkText(fmt.Sprintf("fields[%d].label", i), f.Label, true, MaxTextLen); err != nil {
			return err
		}
		if err := checkText(fmt.Sprintf("fields[%d].value", i), f.Value, true, MaxTextLen); err != nil {
			return err
		}
	}
	if len(j.Documents) == 0 || len(j.Documents) > MaxDocuments {
		return refuse(ReasonMalformed, "%d documents, want 1 to %d", len(j.Documents), MaxDocuments)
	}
	seen := make(map[string]bool, len(j.Documents))
	for i := range j.Documents {
		d := &j.Documents[i]
		if seen[d.ID] {
			return refuse(ReasonMalformed, "documents[%d]: duplicate id %q", i, d.ID)
		}
		seen[d.ID] = true
		if err := d.validate(i); err != nil {
			return err
		}
	}
	return nil
}

func (d *Document) validate(i int) error {
	field := fmt.Sprintf("documents[%d]", i)
	if err := checkPattern(field+".id", d.ID, documentIDPattern, "1-64 letters, digits, '.', '_' or '-'"); err != nil {
		return err
	}
	if err := checkText(field+".name", d.Name, true, MaxTextLen); err != nil {
		return err
	}
	if err := checkPattern(field+".media_type", d.MediaType, mediaTypePattern, "a lower-case type/subtype"); err != nil {
		return err
	}
	if err := checkPattern(field+".sha256", d.SHA256, sha256Form, "64 lower-case hex digits"); err != nil {
		return err
	}
	switch d.Format {
	case "", FormatCMS, FormatRaw:
		if d.Visible != nil {
			return refuse(ReasonMalformed, "%s.visible needs format pades", field)
		}
		if d.Certify {
			return refuse(ReasonMalformed, "%s.certify needs format pades", field)
		}
	case FormatPAdES:
		if d.Certify && d.Visible != nil && d.Visible.Mark == MarkParaf {
			return refuse(ReasonMalformed, "%s.certify: a paraf never certifies; the last signer's ttd does", field)
		}
		if d.MediaType != "application/pdf" {
			return refuse(ReasonUnsupportedFormat, "%s.format pades needs media_type application/pdf, not %q", field, d.MediaType)
		}
		if d.Content == nil {
			return refuse(ReasonUnsupportedFormat, "%s.format pades needs the document's content", field)
		}
		if err := d.Visible.validate(field + ".visible"); err != nil {
			return err
		}
	default:
		return refuse(ReasonUnsupportedFormat, "%s.format %q: want cms, raw or pades", field, truncate(string(d.Format)))
	}
	if d.Size < 0 || d.Size > hardMaxContent {
		return refuse(ReasonMalformed, "%s.size %d out of range", field, d.Size)
	}
	if d.Content == nil {
		return nil
	}
	if d.Size != 0 && d.Size != int64(len(d.Content)) {
		return refuse(ReasonMalformed, "%s.size %d, but content has %d bytes", field, d.Size, len(d.Content))
	}
	sum := sha256.Sum256(d.Content)
	if hex.EncodeToString(sum[:]) != d.SHA256 {
		return refuse(ReasonHashMismatch, "%s (%s): content hashes to %x, declared %s", field, d.ID, sum, d.SHA256)
	}
	return nil
}

// SignatureFormat returns the requested format, cms when none was named.
func (d *Document) SignatureFormat() Format {
	if d.Format == "" {
		return FormatCMS
	}
	return d.Format
}

// ContentBytes returns the total size of the documents' bytes carried in the
// job.
func (j *Job) ContentBytes() int64 {
	var n int64
	for i := range j.Documents {
		n += int64(len(j.Documents[i].Content))
	}
	return n
}

// HashOnly reports whether any document of the job comes without its bytes.
func (j *Job) HashOnly() bool {
	for i := range j.Documents {
		if j.Documents[i].Content == nil {
			return true
		}
	}
	return false
}

// NewDocument returns a document carrying content, with its hash and size
// filled in.
func NewDocument(id, name, mediaType string, content []byte) Document {
	sum := sha256.Sum256(content)
	return Document{ID: id, Name: name, MediaType: mediaType, SHA256: hex.EncodeToString(sum[:]), Size: int64(len(content)), Content: bytes.Clone(content)}
}

// Validate checks the cancel's fields.
func (c *Cancel) Validate() error {
	if err := checkHeader(c.V, c.JobID, c.Terminal); err != nil {
		return err
	}
	if err := checkWindow(c.IssuedAt, c.ExpiresAt); err != nil {
		return err
	}
	return checkDetail("reason", c.Reason, MaxDetailLen)
}

// Validate checks the acknowledgement's fields.
func (a *ResultAck) Validate() error {
	if err := checkHeader(a.V, a.JobID, a.Terminal); err != nil {
		return err
	}
	return checkWindow(a.IssuedAt, a.ExpiresAt)
}

// Validate checks the acknowledgement's fields: one to MaxResultAcks
// distinct job ids.
func (a *ResultAcks) Validate() error {
	if err := checkVersion(a.V); err != nil {
		return err
	}
	if err := ValidTerminalID(a.Terminal); err != nil {
		return malformed("terminal", err)
	}
	switch n := len(a.JobIDs); {
	case n == 0:
		return refuse(ReasonMalformed, "job_ids: empty")
	case n > MaxResultAcks:
		return refuse(ReasonMalformed, "job_ids: %d ids, at most %d", n, MaxResultAcks)
	}
	seen := make(map[string]bool, len(a.JobIDs))
	for i, id := range a.JobIDs {
		if err := ValidJobID(id); err != nil {
			return malformed(fmt.Sprintf("job_ids[%d]", i), err)
		}
		if seen[id] {
			return refuse(ReasonMalformed, "job_ids[%d]: %s named twice", i, id)
		}
		seen[id] = true
	}
	return checkWindow(a.IssuedAt, a.ExpiresAt)
}

// Validate checks the request's fields.
func (r *SyncRequest) Validate() error {
	if err := checkVersion(r.V); err != nil {
		return err
	}
	if err := ValidTerminalID(r.Terminal); err != nil {
		return malformed("terminal", err)
	}
	if err := ValidJobID(r.RequestID); err != nil {
		return malformed("request_id", fmt.Errorf("request id %q: want an upper-case ULID or a lower-case UUID", r.RequestID))
	}
	return checkWindow(r.IssuedAt, r.ExpiresAt)
}

// Validate checks the receipt's fields: a refusal names a reason, an
// acceptance of a job names the job.
func (r *Receipt) Validate() error {
	if err := checkVersion(r.V); err != nil {
		return err
	}
	if err := ValidTerminalID(r.Terminal); err != nil {
		return malformed("terminal", err)
	}
	if err := checkPattern("envelope_sha256", r.EnvelopeSHA256, sha256Form, "64 lower-case hex digits"); err != nil {
		return err
	}
	switch r.For {
	case "", ForJob, ForCancel, ForResultAck, ForResultAcks, ForSyncRequest:
	default:
		return refuse(ReasonMalformed, "for %q: want job, cancel, result_ack, result_acks or sync_request", truncate(string(r.For)))
	}
	if r.StoredEnvelopeSHA256 != "" {
		if err := checkPattern("stored_envelope_sha256", r.StoredEnvelopeSHA256, sha256Form, "64 lower-case hex digits"); err != nil {
			return err
		}
	}
	if r.RequestID != "" {
		if err := ValidJobID(r.RequestID); err != nil {
			return malformed("request_id", err)
		}
	}
	if err := checkTime("at", r.At); err != nil {
		return err
	}
	if err := checkDetail("detail", r.Detail, MaxDetailLen); err != nil {
		return err
	}
	switch r.Status {
	case ReceiptStored, ReceiptDuplicate:
		if r.Reason != "" {
			return refuse(ReasonMalformed, "reason %q on an accepting receipt", truncate(string(r.Reason)))
		}
		if r.For == ForSyncRequest || r.For == ForResultAcks {
			return refuse(ReasonMalformed, "status %s for a %s: only a refusal is a receipt", r.Status, r.For)
		}
	case ReceiptRefused:
		if err := checkReason(r.Reason); err != nil {
			return err
		}
	default:
		return refuse(ReasonMalformed, "status %q: want stored, duplicate or refused", truncate(string(r.Status)))
	}
	// A refusal may name no job: the envelope was too broken to read one,
	// or it was a sync request, which names none.
	if r.JobID == "" && (r.Status == ReceiptRefused || r.For == ForSyncRequest) {
		return nil
	}
	if err := ValidJobID(r.JobID); err != nil {
		return malformed("job_id", err)
	}
	return nil
}

var reasonPattern = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)

// checkReason accepts any well-formed code, not only the ones this version
// defines, so a newer terminal's reasons still reach the central system.
func checkReason(r ReasonCode) error {
	if r == "" {
		return refuse(ReasonMalformed, "reason is required")
	}
	return checkPattern("reason", string(r), reasonPattern, "a lower-case reason code")
}

// Validate checks the result's fields: a signed result carries the signer
// certificate and one signature per document; any other outcome a reason.
func (r *Result) Validate() error {
	if err := checkHeader(r.V, r.JobID, r.Terminal); err != nil {
		return err
	}
	if r.KID != "" {
		if err := checkPattern("kid", r.KID, kidPattern, "base64url characters"); err != nil {
			return err
		}
	}
	if err := checkTime("completed_at", r.CompletedAt); err != nil {
		return err
	}
	if err := checkDetail("detail", r.Detail, MaxDetailLen); err != nil {
		return err
	}
	switch r.Outcome {
	case OutcomeSigned:
		if r.Reason != "" {
			return refuse(ReasonMalformed, "reason %q on a signed result", truncate(string(r.Reason)))
		}
		if len(r.SignerCert) == 0 || len(r.SignerCert) > MaxCertLen {
			return refuse(ReasonMalformed, "signer_cert has %d bytes, want 1 to %d", len(r.SignerCert), MaxCertLen)
		}
		if len(r.Documents) == 0 || len(r.Documents) > MaxDocuments {
			return refuse(ReasonMalformed, "%d documents, want 1 to %d", len(r.Documents), MaxDocuments)
		}
	case OutcomeRejected, OutcomeExpired, OutcomeCancelled, OutcomeFailed:
		if err := checkReason(r.Reason); err != nil {
			return err
		}
		if len(r.Documents) != 0 {
			return refuse(ReasonMalformed, "documents on a %s result", r.Outcome)
		}
	default:
		return refuse(ReasonMalformed, "outcome %q: want signed, rejected, expired, cancelled or failed", truncate(string(r.Outcome)))
	}
	seen := make(map[string]bool, len(r.Documents))
	for i, d := range r.Documents {
		field := fmt.Sprintf("documents[%d]", i)
		if seen[d.ID] {
			return refuse(ReasonMalformed, "%s: duplicate id %q", field, d.ID)
		}
		seen[d.ID] = true
		if err := checkPattern(field+".id", d.ID, documentIDPattern, "a document id"); err != nil {
			return err
		}
		if err := checkPattern(field+".sha256", d.SHA256, sha256Form, "64 lower-case hex digits"); err != nil {
			return err
		}
		limit := MaxSignatureLen
		switch d.Format {
		case FormatRaw:
			if d.Level != "" || d.TimestampError != "" || d.LevelError != "" {
				return refuse(ReasonMalformed, "%s: level, timestamp_error and level_error are not for raw", field)
			}
		case FormatCMS:
			switch d.Level {
			case "", LevelBB, LevelBT, LevelBLT:
			default:
				return refuse(ReasonMalformed, "%s.level %q: want B-B, B-T or B-LT for cms", field, truncate(d.Level))
			}
		case FormatPAdES:
			limit = MaxSignedPDFLen
			switch d.Level {
			case LevelBB, LevelBT, LevelBLT, LevelBLTA:
			default:
				return refuse(ReasonMalformed, "%s.level %q: want B-B, B-T, B-LT or B-LTA", field, truncate(d.Level))
			}
		default:
			return refuse(ReasonMalformed, "%s.format %q: want cms, raw or pades", field, truncate(string(d.Format)))
		}
		if d.Format != FormatRaw {
			for _, f := range []struct{ name, v string }{{"timestamp_error", d.TimestampError}, {"level_error", d.LevelError}} {
				if err := checkDetail(field+"."+f.name, f.v, MaxDetailLen); err != nil {
					return err
				}
			}
		}
		if len(d.Signature) == 0 || len(d.Signature) > limit {
			return refuse(ReasonMalformed, "%s.signature has %d bytes, want 1 to %d", field, len(d.Signature), limit)
		}
		if err := checkTime(field+".signed_at", d.SignedAt); err != nil {
			return err
		}
	}
	return nil
}

// Validate checks the status's fields.
func (s *Status) Validate() error {
	if err := checkVersion(s.V); err != nil {
		return err
	}
	if err := ValidTerminalID(s.Terminal); err != nil {
		return malformed("terminal", err)
	}
	if s.State != StateOnline && s.State != StateOffline {
		return refuse(ReasonMalformed, "state %q: want online or offline", truncate(string(s.State)))
	}
	if err := checkText("version", s.Version, true, MaxVersionLen); err != nil {
		return err
	}
	if s.JobsWaiting < 0 || s.ResultsUndelivered < 0 {
		return refuse(ReasonMalformed, "negative count")
	}
	if err := checkDetail("last_error", s.LastError, MaxDetailLen); err != nil {
		return err
	}
	if s.Edition < 0 {
		return refuse(ReasonMalformed, "edition %d: want 1 or more", s.Edition)
	}
	if len(s.Versions) > 16 {
		return refuse(ReasonMalformed, "versions: %d of them, at most 16", len(s.Versions))
	}
	for _, v := range s.Versions {
		if v < 1 {
			return refuse(ReasonMalformed, "versions: %d: want 1 or more", v)
		}
	}
	return checkTime("since", s.Since)
}

// Validate checks the sync's fields.
func (s *Sync) Validate() error {
	if err := checkVersion(s.V); err != nil {
		return err
	}
	if err := ValidTerminalID(s.Terminal); err != nil {
		return malformed("terminal", err)
	}
	if err := checkTime("at", s.At); err != nil {
		return err
	}
	switch s.Trigger {
	case "", SyncOnConnect, SyncOnInterval, SyncOnRequest:
	default:
		return refuse(ReasonMalformed, "trigger %q: want connect, interval or request", truncate(string(s.Trigger)))
	}
	if s.RequestID != "" {
		if err := ValidJobID(s.RequestID); err != nil {
			return malformed("request_id", err)
		}
	}
	for _, l := range []struct {
		field string
		ids   []string
	}{{"jobs_waiting", s.JobsWaiting}, {"results_undelivered", s.ResultsUndelivered}} {
		if len(l.ids) > MaxSyncIDs {
			return refuse(ReasonMalformed, "%s has %d ids, limit %d", l.field, len(l.ids), MaxSyncIDs)
		}
		for i, id := range l.ids {
			if err := ValidJobID(id); err != nil {
				return malformed(fmt.Sprintf("%s[%d]", l.field, i), err)
			}
		}
	}
	return nil
}
