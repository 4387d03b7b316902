package ctl

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
	"unicode"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/signature/cms"
	"github.com/tekenid/teken/signature/pades"
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
	Field  string `json:"field,omitempty"` // the PDF signature field
	Kind   string `json:"kind"`            // signature, or document-timestamp in a PDF
	Status Status `json:"status"`
	Reason string `json:"reason,omitempty"` // why it is not VALID
	Signer string `json:"signer,omitempty"` // certificate CN
	NIP    string `json:"nip,omitempty"`    // certificate serialNumber
	// SigningTime is what the signer claims: the signing-time attribute
	// (cms), the result's signed_at (raw), the signature dictionary's /M
	// (pades).
	SigningTime *time.Time `json:"signing_time,omitempty"`
	// TimestampTime is the genTime of a verified RFC 3161 timestamp.
	TimestampTime *time.Time `json:"timestamp_time,omitempty"`
	Level         string     `json:"level,omitempty"`      // PAdES B-B or B-T
	ByteRange     []int      `json:"byte_range,omitempty"` // pades
	// CoversWholeFile says nothing follows what a PDF signature signs.
	CoversWholeFile *bool `json:"covers_whole_file,omitempty"`
}

// Valid reports whether the file and every signature in it are VALID.
func (v Verdict) Valid() bool { return v.Status == StatusValid && len(v.Signatures) > 0 }

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

// Trust is what signatures are checked against.
type Trust struct {
	Roots *x509.CertPool // the CAs signers chain to
	// TSARoots are the CAs timestamp authorities chain to; nil means
	// Roots.
	TSARoots *x509.CertPool
	// CRLs are revocation lists of the signers' CAs; nothing is fetched.
	CRLs []*x509.RevocationList
	Now  time.Time // the validation time; zero means now
}

// ErrNoSignature says a result holds no signature for a document.
var ErrNoSignature = errors.New("the result holds no signature for this document")

// LoadRoots reads a PEM CA bundle.
func LoadRoots(path string) (*x509.CertPool, error) {
	if path == "" {
		return nil, errors.New("no CA bundle: set --ca, TEKEN_SIGNER_CA, TEKEN_CA or signer_ca in the config file")
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("CA bundle: %w", err)
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(raw) {
		return nil, fmt.Errorf("CA bundle %s holds no PEM certificate", path)
	}
	return p, nil
}

// LoadCRL reads a certificate revocation list, PEM ("X509 CRL") or DER.
func LoadCRL(path string) (*x509.RevocationList, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("CRL: %w", err)
	}
	der := raw
	if b, _ := pem.Decode(raw); b != nil {
		if b.Type != "X509 CRL" {
			return nil, fmt.Errorf("CRL %s: PEM block %q, want X509 CRL", path, b.Type)
		}
		der = b.Bytes
	}
	l, err := x509.ParseRevocationList(der)
	if err != nil {
		return nil, fmt.Errorf("CRL %s: %w", path, err)
	}
	return l, nil
}

// ReadResult decodes a result file as results --out writes it (the wire
// JSON of a Result).
func ReadResult(raw []byte) (*api.Result, error) {
	r, err := api.DecodeResult(raw)
	if err != nil {
		return nil, fmt.Errorf("result: %w", err)
	}
	return r, nil
}

// IsPDF reports whether b starts as a PDF does: %PDF- within its first
// kilobyte, where readers look for it.
func IsPDF(b []byte) bool { return bytes.Contains(b[:min(len(b), 1024)], []byte("%PDF-")) }

// VerifyResult checks each document file against the signature the result
// holds for it, matched by the document's SHA-256.
func VerifyResult(ctx context.Context, r *api.Result, docs []string, t Trust) ([]Verdict, error) {
	if r.Outcome != api.OutcomeSigned {
		return nil, fmt.Errorf("job %s ended %s: the result holds no signatures", r.JobID, r.Outcome)
	}
	var signerCert *x509.Certificate
	if len(r.SignerCert) > 0 {
		c, err := x509.ParseCertificate(r.SignerCert)
		if err != nil {
			return nil, fmt.Errorf("result signer certificate: %w", err)
		}
		signerCert = c
	}
	byHash := make(map[string]api.SignedDocument, len(r.Documents))
	for _, d := range r.Documents {
		byHash[d.SHA256] = d
	}
	out := make([]Verdict, 0, len(docs))
	for _, path := range docs {
		content, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("document: %w", err)
		}
		sum := sha256.Sum256(content)
		d, ok := byHash[hex.EncodeToString(sum[:])]
		if !ok {
			v := Verdict{Document: path, Status: StatusInvalid, Signatures: []SignatureVerdict{}}
			v.fail(StatusInvalid, "%v", ErrNoSignature)
			out = append(out, v)
			continue
		}
		v := VerifyDocument(ctx, d, content, signerCert, t)
		v.Document = path
		out = append(out, v)
	}
	return out, nil
}

// VerifyDocument checks one signed document of a result against the
// document's bytes as dispatched: a CMS signature over them, a raw
// signature by signerCert (the result's), or a signed PDF that begins
// with them and whose newest signature, by signerCert, covers all that
// the terminal added.
func VerifyDocument(ctx context.Context, d api.SignedDocument, content []byte, signerCert *x509.Certificate, t Trust) Verdict {
	var v Verdict
	switch d.Format {
	case api.FormatCMS:
		v = VerifyCMS(d.Signature, content, t)
	case api.FormatRaw:
		v = verifyRaw(d, content, signerCert, t)
	case api.FormatPAdES:
		v = verifyPAdES(ctx, d.Signature, content, signerCert, t)
	default:
		v = Verdict{Format: d.Format, Signatures: []SignatureVerdict{}}
		v.fail(StatusInvalid, "format %q cannot be checked", d.Format)
	}
	v.DocumentID = d.ID
	return v
}

// VerifyCMS checks a detached CMS signature over content, its signer
// chaining to t.Roots now: the signing-time attribute is the signer's
// claim, and a CMS result carries no timestamp.
func VerifyCMS(sig, content []byte, t Trust) Verdict {
	v := Verdict{Format: api.FormatCMS, Status: StatusValid}
	s, err := cms.Verify(sig, content, cms.VerifyOptions{Roots: t.Roots, CurrentTime: t.Now})
	sv := SignatureVerdict{Kind: string(pades.KindSignature)}
	if s != nil && s.Signer != nil {
		sv.Signer, sv.NIP = s.Signer.Subject.CommonName, s.Signer.Subject.SerialNumber
		sv.SigningTime = timePtr(s.SigningTime)
	}
	sv.Status, sv.Reason = classify(err)
	if err == nil && t.Roots == nil {
		sv.Status, sv.Reason = StatusIndeterminate, errNoBundle
	}
	v.Signatures = []SignatureVerdict{sv}
	v.settle()
	return v
}

// classify turns a signature/cms error into a verdict: a signature that is
// intact but whose signer does not chain to the bundle, or whose
// certificate is out of its validity, is INDETERMINATE, and so is one in an
// algorithm signature/cms does not accept, which was not checked; any
// other failure INVALID.
func classify(err error) (Status, string) {
	var unknown x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	switch {
	case err == nil:
		return StatusValid, ""
	case errors.Is(err, cms.ErrUntrusted) && errors.As(err, &unknown):
		return StatusIndeterminate, "unknown CA: " + err.Error()
	case errors.Is(err, cms.ErrUntrusted) && errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return StatusIndeterminate, "certificate not valid now, and no timestamp proves when it signed: " + err.Error()
	case errors.Is(err, cms.ErrUnsupported):
		return StatusIndeterminate, err.Error() // not checked, as pades.Verify has it
	}
	return StatusInvalid, err.Error()
}

func verifyRaw(d api.SignedDocument, content []byte, cert *x509.Certificate, t Trust) Verdict {
	v := Verdict{Format: api.FormatRaw, Status: StatusValid}
	sv := SignatureVerdict{Kind: string(pades.KindSignature), SigningTime: timePtr(d.SignedAt)}
	sv.Status, sv.Reason = checkRaw(d, content, cert, t)
	if cert != nil {
		sv.Signer, sv.NIP = cert.Subject.CommonName, cert.Subject.SerialNumber
	}
	v.Signatures = []SignatureVerdict{sv}
	v.settle()
	return v
}

func checkRaw(d api.SignedDocument, content []byte, cert *x509.Certificate, t Trust) (Status, string) {
	if cert == nil {
		return StatusInvalid, "raw signature without the signer certificate"
	}
	if err := cms.VerifyRaw(d.Signature, content, cert, cms.RawOptions{}); err != nil {
		return StatusInvalid, err.Error()
	}
	if t.Roots == nil {
		return StatusIndeterminate, errNoBundle
	}
	now := t.Now
	if now.IsZero() {
		now = time.Now()
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: t.Roots, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return classify(fmt.Errorf("%w: %w", cms.ErrUntrusted, err))
	}
	return StatusValid, ""
}

// errNoBundle is why a signature checked without roots is INDETERMINATE:
// signature/cms and x509 would skip the chain, or use the system's.
const errNoBundle = "no CA bundle to check the signer against"

// VerifyPDF checks every signature of a signed PDF on its own (a file
// results --out wrote, say).
func VerifyPDF(ctx context.Context, pdf []byte, t Trust) Verdict {
	v := Verdict{Format: api.FormatPAdES, Status: StatusValid, Signatures: []SignatureVerdict{}}
	rep, err := pades.Verify(ctx, pdf, padesOptions(t))
	if err != nil {
		v.fail(StatusInvalid, "%v", err)
		return v
	}
	v.Signatures = signatureVerdicts(rep)
	v.settle()
	return v
}

// verifyPAdES is VerifyPDF for a pades result, with what the result
// promises besides: the signed PDF is the document as dispatched followed
// by the terminal's update, its newest signature covers that update, and
// that signature is by the result's signer certificate.
func verifyPAdES(ctx context.Context, signed, original []byte, signerCert *x509.Certificate, t Trust) Verdict {
	v := Verdict{Format: api.FormatPAdES, Status: StatusValid, Signatures: []SignatureVerdict{}}
	if !bytes.HasPrefix(signed, original) {
		v.fail(StatusInvalid, "the signed PDF does not begin with the document as dispatched")
	}
	rep, err := pades.Verify(ctx, signed, padesOptions(t))
	if err != nil {
		v.fail(StatusInvalid, "%v", err)
		return v
	}
	v.Signatures = signatureVerdicts(rep)
	v.settle()
	newest := rep.Signatures[len(rep.Signatures)-1]
	switch {
	case newest.ByteRange[2]+newest.ByteRange[3] <= len(original):
		v.fail(StatusInvalid, "no signature covers what the terminal added to the document")
	case signerCert != nil && (newest.Signer == nil || !newest.Signer.Equal(signerCert)):
		v.fail(StatusInvalid, "the newest signature is not by the result's signer certificate")
	}
	return v
}

func padesOptions(t Trust) pades.VerifyOptions {
	return pades.VerifyOptions{Roots: t.Roots, TSARoots: t.TSARoots, CRLs: t.CRLs, Now: t.Now}
}

func signatureVerdicts(rep *pades.Report) []SignatureVerdict {
	out := make([]SignatureVerdict, 0, len(rep.Signatures))
	for _, s := range rep.Signatures {
		sv := SignatureVerdict{Field: s.Field, Kind: string(s.Kind), Status: Status(s.Status.String()), Reason: s.Reason,
			SigningTime: timePtr(s.SigningTime), TimestampTime: timePtr(s.TimestampTime), Level: s.Level,
			ByteRange: s.ByteRange[:], CoversWholeFile: &s.CoversWholeFile}
		if sv.Kind == "" {
			sv.Kind = "unknown"
		}
		if s.Signer != nil {
			sv.Signer, sv.NIP = s.Signer.Subject.CommonName, s.Signer.Subject.SerialNumber
		}
		out = append(out, sv)
	}
	return out
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// WriteVerdicts prints verdicts as `tekenctl verify` does: per file its
// format and verdict, then per signature its verdict, signer, times,
// level and what it covers; or, with asJSON, one Verdict as JSON a line.
// Names and reasons come from the files checked, so control and format
// characters in them are printed escaped.
func WriteVerdicts(w io.Writer, vs []Verdict, asJSON bool) error {
	for _, v := range vs {
		var err error
		if asJSON {
			err = writeVerdictJSON(w, v)
		} else {
			err = writeVerdict(w, v)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func writeVerdictJSON(w io.Writer, v Verdict) error {
	line, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", line)
	return err
}

func writeVerdict(w io.Writer, v Verdict) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (%s", printable(v.Document), v.Format)
	if v.DocumentID != "" {
		fmt.Fprintf(&b, ", document %s", printable(v.DocumentID))
	}
	b.WriteString(")\n")
	// A lone CMS or raw signature is the file's verdict; the signatures
	// of a PDF are listed one by one.
	many := len(v.Signatures) > 1 || v.Format == api.FormatPAdES
	reason := v.Reason
	if !many && reason == "" && len(v.Signatures) == 1 {
		reason = v.Signatures[0].Reason
	}
	fmt.Fprintf(&b, "  verdict: %s\n", verdictText(v.Status, reason))
	for i, s := range v.Signatures {
		indent := "  "
		if many {
			head := fmt.Sprintf("  signature %d", i+1)
			if s.Kind != string(pades.KindSignature) {
				head += " (" + s.Kind + ")"
			}
			if s.Field != "" {
				head += ", field " + printable(s.Field)
			}
			fmt.Fprintf(&b, "%s: %s\n", head, verdictText(s.Status, s.Reason))
			indent = "    "
		}
		writeSignature(&b, indent, s)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func writeSignature(b *strings.Builder, indent string, s SignatureVerdict) {
	line := func(label, format string, args ...any) {
		fmt.Fprintf(b, "%s%-10s %s\n", indent, label+":", fmt.Sprintf(format, args...))
	}
	if s.Signer != "" {
		line("signer", "%s (NIP %s)", printable(s.Signer), orDash(printable(s.NIP)))
	}
	if s.SigningTime != nil {
		line("signed", "%s", s.SigningTime.Local().Format(time.RFC3339))
	}
	if s.TimestampTime != nil {
		line("timestamp", "%s", s.TimestampTime.Local().Format(time.RFC3339))
	}
	if s.Level != "" {
		line("level", "%s", s.Level)
	}
	if len(s.ByteRange) == 4 && s.CoversWholeFile != nil {
		end := s.ByteRange[2] + s.ByteRange[3]
		if *s.CoversWholeFile {
			line("covers", "the whole file (%d bytes)", end)
		} else {
			line("covers", "bytes 0 to %d only: an earlier revision", end)
		}
	}
}

func verdictText(s Status, reason string) string {
	if reason == "" {
		return string(s)
	}
	return string(s) + ": " + printable(reason)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// printable escapes control and format characters (a terminal's escape
// sequences, bidi overrides that make a name read as another).
func printable(s string) string {
	var b strings.Builder
	for _, r := range s {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			fmt.Fprintf(&b, "\\u%04x", r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}
