package ctl

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math"
	"mime"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/signature/pades"
	"github.com/tekenid/teken/transport"
)

// DispatchOptions describe one job for Dispatch.
type DispatchOptions struct {
	Settings
	// SignerCert is the PEM certificate of the official who must sign.
	SignerCert string
	Title      string // default: the first file's name
	Number     string // default: "-"
	From       string // default: "tekenctl"
	Expires    time.Duration
	Format     api.Format // cms (default), raw or pades
	// Visible places the visible signature block of every document, for
	// pades only (see Placement); nil asks for an invisible signature.
	Visible *api.Visible
	// Jabatan, the official's position in the block, and Certify, the
	// signature certifying each pades document, make the job one of v 2
	// (as do a mark, an anchor or initials in Visible): only a terminal
	// whose status lists version 2 takes it.
	Jabatan string
	Certify bool
	Files   []string
	// Wait also waits for the result.
	Wait bool
	// ReceiptTimeout bounds the wait for the terminal's receipt.
	ReceiptTimeout time.Duration
	// OnReceipt, when set, is given the receipt of a job the terminal
	// accepted (stored or duplicate) as soon as it comes, before Dispatch
	// waits for the result: the caller can say the job is stored while
	// the official has yet to act.
	OnReceipt func(*api.Receipt)
}

// Dispatched is what came back for a job.
type Dispatched struct {
	Job     *api.Job
	Receipt *api.Receipt
	Result  *api.Result // with Wait
}

// RefusedError says the terminal refused the job.
type RefusedError struct {
	Reason api.ReasonCode
	Detail string
}

func (e *RefusedError) Error() string {
	if e.Detail == "" {
		return fmt.Sprintf("terminal refused the job: %s", e.Reason)
	}
	return fmt.Sprintf("terminal refused the job: %s (%s)", e.Reason, e.Detail)
}

// NotSignedError says the job ended without a signature.
type NotSignedError struct{ Result *api.Result }

func (e *NotSignedError) Error() string {
	r := e.Result
	msg := fmt.Sprintf("job %s ended %s", r.JobID, r.Outcome)
	if r.Reason != "" {
		msg += ": " + string(r.Reason)
	}
	if r.Detail != "" {
		msg += " (" + r.Detail + ")"
	}
	return msg
}

// Signatory reads a signer certificate: its identity is the SHA-256 of the
// DER, name and NIP come from the subject's CN and serialNumber.
func Signatory(path string) (api.Signatory, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return api.Signatory{}, fmt.Errorf("signer certificate: %w", err)
	}
	der := raw
	if b, _ := pem.Decode(raw); b != nil {
		if b.Type != "CERTIFICATE" {
			return api.Signatory{}, fmt.Errorf("signer certificate %s: PEM block %q, want CERTIFICATE", path, b.Type)
		}
		der = b.Bytes
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return api.Signatory{}, fmt.Errorf("signer certificate %s: %w", path, err)
	}
	sum := sha256.Sum256(cert.Raw)
	return api.Signatory{CertSHA256: hex.EncodeToString(sum[:]), Name: cert.Subject.CommonName, NIP: cert.Subject.SerialNumber}, nil
}

// MediaType names a file's media type by its extension; application/pdf for
// .pdf, application/octet-stream when the extension says nothing.
func MediaType(name string) string {
	ext := strings.ToLower(filepath.Ext(name))
	switch ext {
	case ".pdf":
		return "application/pdf"
	case "":
		return "application/octet-stream"
	}
	t := mime.TypeByExtension(ext)
	if t == "" {
		return "application/octet-stream"
	}
	if mt, _, err := mime.ParseMediaType(t); err == nil {
		return mt
	}
	return "application/octet-stream"
}

var docIDUnsafe = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// DocumentID turns a file name into a document id (1-64 letters, digits,
// '.', '_' or '-', starting with a letter or digit), unique in seen.
func DocumentID(name string, seen map[string]bool) string {
	id := strings.TrimLeft(docIDUnsafe.ReplaceAllString(filepath.Base(name), "_"), "._-")
	if id == "" {
		id = "doc"
	}
	if len(id) > 60 {
		id = id[:60]
	}
	base := id
	for i := 2; seen[id]; i++ {
		id = fmt.Sprintf("%s-%d", base, i)
	}
	seen[id] = true
	return id
}

// Placement builds the visible block of a pades job from tekenctl's
// flags: page is 1-based (0: the last page), rect is "x,y,w,h" in PDF
// points with the origin at the page's lower left corner and y growing
// upwards (empty: the terminal's default, a block in the bottom right
// corner), verifyURL is what the block's QR code opens. invisible asks for
// no block at all, and then takes none of them.
func Placement(page int, rect, verifyURL string, invisible bool) (*api.Visible, error) {
	if invisible {
		if page != 0 || rect != "" || verifyURL != "" {
			return nil, errors.New("an invisible signature has no page, rect or verify URL")
		}
		return nil, nil
	}
	if page < 0 {
		return nil, fmt.Errorf("page %d: want 1 or more, or 0 for the last page", page)
	}
	v := &api.Visible{Page: page, VerifyURL: verifyURL}
	if rect != "" {
		r, err := ParseRect(rect)
		if err != nil {
			return nil, err
		}
		v.Rect = r[:]
	}
	return v, nil
}

// ParseRect reads "x,y,w,h" (PDF points, origin at the page's lower left
// corner) into the x1, y1, x2, y2 a job carries.
func ParseRect(s string) ([4]float64, error) {
	parts := strings.Split(s, ",")
	if len(parts) != 4 {
		return [4]float64{}, fmt.Errorf("rect %q: want x,y,w,h in PDF points, e.g. 350,40,210,80", s)
	}
	var n [4]float64
	for i, p := range parts {
		f, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return [4]float64{}, fmt.Errorf("rect %q: %q is not a number", s, p)
		}
		n[i] = f
	}
	if n[0] < 0 || n[1] < 0 || n[2] <= 0 || n[3] <= 0 {
		return [4]float64{}, fmt.Errorf("rect %q: want x and y of 0 or more, w and h more than 0", s)
	}
	return [4]float64{n[0], n[1], n[0] + n[2], n[1] + n[3]}, nil
}

// checkPDF makes d a pades document with its own copy of vis, and refuses
// here what no terminal signs, whatever its settings: a file that is not a
// PDF, one that is malformed, encrypted or certified against changes, and
// a block on a page it does not have or off the page. What depends on a
// terminal's settings (active content, its PDF budget) is left to it.
func checkPDF(path string, d *api.Document, vis *api.Visible) error {
	if !IsPDF(d.Content) {
		return fmt.Errorf("document %s: format pades needs a PDF", path)
	}
	d.MediaType = "application/pdf"
	var a *pades.Appearance
	if vis != nil {
		c := *vis
		c.Rect = slices.Clone(vis.Rect)
		d.Visible = &c
		a = &pades.Appearance{Page: vis.Page, VerifyURL: vis.VerifyURL}
		copy(a.Rect[:], vis.Rect)
	}
	_, err := pades.Inspect(d.Content, a, pades.Limits{AllowEmbeddedFiles: true})
	for _, never := range []error{pades.ErrPage, pades.ErrPlacement, pades.ErrMalformed, pades.ErrEncrypted, pades.ErrLocked} {
		if errors.Is(err, never) {
			return fmt.Errorf("document %s: %w", path, err)
		}
	}
	return nil
}

// BuildJob makes the job Dispatch publishes, without signing it.
func BuildJob(o DispatchOptions, now time.Time) (*api.Job, error) {
	if err := api.ValidTerminalID(o.Terminal); err != nil {
		return nil, err
	}
	if len(o.Files) == 0 {
		return nil, errors.New("no documents")
	}
	if o.SignerCert == "" {
		return nil, errors.New("no signer certificate (--signer)")
	}
	who, err := Signatory(o.SignerCert)
	if err != nil {
		return nil, err
	}
	switch o.Format {
	case "":
		o.Format = api.FormatCMS
	case api.FormatCMS, api.FormatRaw, api.FormatPAdES:
	default:
		return nil, fmt.Errorf("format %q: want cms, raw or pades", o.Format)
	}
	if o.Visible != nil && o.Format != api.FormatPAdES {
		return nil, errors.New("a visible signature block needs format pades")
	}
	if o.Expires <= 0 {
		o.Expires = 24 * time.Hour
	}
	if o.Title == "" {
		o.Title = filepath.Base(o.Files[0])
	}
	if o.Number == "" {
		o.Number = "-"
	}
	if o.From == "" {
		o.From = "tekenctl"
	}
	if o.Certify && o.Format != api.FormatPAdES {
		return nil, errors.New("certify needs format pades")
	}
	who.Jabatan = o.Jabatan
	now = now.UTC().Truncate(time.Second)
	j := &api.Job{V: api.Version, JobID: api.NewJobID(), Terminal: o.Terminal,
		IssuedAt: now, ExpiresAt: now.Add(o.Expires), Signer: who,
		Title: o.Title, Number: o.Number, Sender: o.From}
	seen := map[string]bool{}
	for _, f := range o.Files {
		content, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("document: %w", err)
		}
		d := api.NewDocument(DocumentID(f, seen), filepath.Base(f), MediaType(f), content)
		if o.Format != api.FormatCMS {
			d.Format = o.Format
		}
		if o.Format == api.FormatPAdES {
			if err := checkPDF(f, &d, o.Visible); err != nil {
				return nil, err
			}
			d.Certify = o.Certify
		}
		j.Documents = append(j.Documents, d)
	}
	if j.UsesMarks() {
		j.V = api.VersionMarks
	}
	if err := j.Validate(); err != nil {
		return nil, fmt.Errorf("job: %w", err)
	}
	// The terminal refuses (too_large) a job whose signed result could be
	// over what a Result may carry; say so before anything is published.
	if n := j.MaxResult(); n > api.MaxResultBytes {
		return nil, fmt.Errorf("job: its signed result could be %d bytes, over the %d a Result may carry: send the PDFs in fewer or smaller jobs", n, api.MaxResultBytes)
	}
	return j, nil
}

// Dispatch signs and publishes one job, waits for its receipt and, with
// Wait, for its result. A refusal is a *RefusedError, a result other than
// signed a *NotSignedError.
//
// The dispatcher client's session is cleared afterwards, so a one-off
// dispatch leaves no session on the broker collecting messages.
func Dispatch(ctx context.Context, o DispatchOptions) (*Dispatched, error) {
	j, err := BuildJob(o, time.Now())
	if err != nil {
		return nil, err
	}
	signer, err := LoadDispatcherKey(o.DispatcherKey)
	if err != nil {
		return nil, err
	}
	clientID := randomClientID("tekenctl-dispatch")
	conn, err := o.Connection(clientID)
	if err != nil {
		return nil, err
	}
	receipts := make(chan *api.Receipt, 4)
	results := make(chan *api.Result, 4)
	rec := &recordingSigner{Signer: signer}
	var seen terminalSeen
	d, err := transport.OpenDispatcher(transport.DispatcherConfig{
		Connection: conn, Root: o.TopicRoot(), Signer: rec, MaxMessageBytes: o.MessageLimit(),
		OnStatus: func(_ context.Context, s *api.Status) {
			if s.Terminal == j.Terminal {
				seen.set(s)
			}
		},
		OnReceipt: func(_ context.Context, r *api.Receipt) {
			if r.For != "" && r.For != api.ForJob {
				return
			}
			// A refusal of an envelope too broken or too large to parse
			// names no job, only the envelope's hash.
			if r.JobID == j.JobID || (r.JobID == "" && r.EnvelopeSHA256 == rec.envelopeSHA256()) {
				select {
				case receipts <- r:
				default:
				}
			}
		},
		// A one-off dispatch keeps no result, so it acknowledges none:
		// the terminal holds each, this job's too, until the central
		// system's own session (tekenctl results) has stored it.
		WatchResults: true,
		OnResult: func(_ context.Context, r *api.Result) error {
			if r.JobID == j.JobID {
				select {
				case results <- r:
				default:
				}
			}
			return nil
		},
	})
	if err != nil {
		return nil, err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = d.Close(cctx)
		_ = transport.ClearSession(cctx, conn)
	}()
	timeout := o.ReceiptTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := d.WaitConnected(rctx); err != nil {
		return nil, err
	}
	if err := d.Publish(rctx, j); err != nil {
		return nil, err
	}
	out := &Dispatched{Job: j}
	select {
	case out.Receipt = <-receipts:
	case <-rctx.Done():
		return out, fmt.Errorf("no receipt from terminal %s within %s: %s: %w", j.Terminal, timeout, noReceiptCauses(j.Terminal, o.TopicRoot(), seen.get(), rec.envelopeSize(), o.MessageLimit()), rctx.Err())
	}
	if out.Receipt.Status == api.ReceiptRefused {
		return out, &RefusedError{Reason: out.Receipt.Reason, Detail: out.Receipt.Detail}
	}
	if o.OnReceipt != nil {
		o.OnReceipt(out.Receipt)
	}
	if !o.Wait {
		return out, nil
	}
	select {
	case out.Result = <-results:
	case <-ctx.Done():
		return out, fmt.Errorf("wait for the result of job %s: %w", j.JobID, ctx.Err())
	}
	if out.Result.Outcome != api.OutcomeSigned {
		return out, &NotSignedError{Result: out.Result}
	}
	return out, nil
}

// noReceiptCauses says what most likely kept the receipt away, from what
// the terminal's retained status said (nil: none came).
func noReceiptCauses(terminal, root string, st *api.Status, size, limit int) string {
	switch {
	case st == nil:
		return fmt.Sprintf("no status of terminal %s under topic root %s either: is the terminal id or the topic root wrong (see tekenctl fleet)? (RabbitMQ gives no retained status to a wildcard subscription, see docs/BROKERS.md.) Else the terminal is offline and the job waits at the broker", terminal, root)
	case st.State == api.StateOffline:
		return fmt.Sprintf("terminal %s is offline since %s: the job waits at the broker and is stored when the terminal connects; its receipt comes then", terminal, st.Since.Format(time.RFC3339))
	default:
		return fmt.Sprintf("terminal %s is online: a broker with a message size limit below this envelope's %d bytes drops it without a word (Mosquitto message_size_limit, RabbitMQ max_message_size; tekenctl checks against %d, see --max-message-bytes); or the broker's ACL does not let this client publish to %s/t/%s/jobs — see the broker's log", terminal, size, limit, root, terminal)
	}
}

// terminalSeen keeps the last Status of the job's terminal.
type terminalSeen struct {
	mu sync.Mutex
	st *api.Status
}

func (t *terminalSeen) set(s *api.Status) { t.mu.Lock(); t.st = s; t.mu.Unlock() }

func (t *terminalSeen) get() *api.Status { t.mu.Lock(); defer t.mu.Unlock(); return t.st }

// recordingSigner keeps the hash and size of the last job envelope it
// signed.
type recordingSigner struct {
	*api.Signer
	mu   sync.Mutex
	hash string
	size int
}

func (r *recordingSigner) SignJob(j *api.Job) ([]byte, error) {
	env, err := r.Signer.SignJob(j)
	if err == nil {
		r.mu.Lock()
		r.hash, r.size = api.EnvelopeSHA256(env), len(env)
		r.mu.Unlock()
	}
	return env, err
}

func (r *recordingSigner) envelopeSize() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.size
}

func (r *recordingSigner) envelopeSHA256() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.hash
}
