package ctl

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"mime"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/tekenid/teken/api"
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
	Format     api.Format // cms (default) or raw
	Files      []string
	// Wait also waits for the result.
	Wait bool
	// ReceiptTimeout bounds the wait for the terminal's receipt.
	ReceiptTimeout time.Duration
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
	case api.FormatCMS, api.FormatRaw:
	default:
		return nil, fmt.Errorf("format %q: want cms or raw", o.Format)
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
		j.Documents = append(j.Documents, d)
	}
	if err := j.Validate(); err != nil {
		return nil, fmt.Errorf("job: %w", err)
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
	d, err := transport.OpenDispatcher(transport.DispatcherConfig{
		Connection: conn, Root: o.TopicRoot(), Signer: rec,
		OnReceipt: func(_ context.Context, r *api.Receipt) {
			// A refusal of an envelope too broken or too large to parse
			// names no job, only the envelope's hash.
			if r.JobID == j.JobID || (r.JobID == "" && r.EnvelopeSHA256 == rec.envelopeSHA256()) {
				select {
				case receipts <- r:
				default:
				}
			}
		},
		// Results of other jobs are taken and acknowledged too; the
		// central system's own session receives them all the same.
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
		return out, fmt.Errorf("no receipt from terminal %s within %s (is it online? see tekenctl fleet): %w", j.Terminal, timeout, rctx.Err())
	}
	if out.Receipt.Status == api.ReceiptRefused {
		return out, &RefusedError{Reason: out.Receipt.Reason, Detail: out.Receipt.Detail}
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

// recordingSigner keeps the hash of the last job envelope it signed.
type recordingSigner struct {
	*api.Signer
	mu   sync.Mutex
	hash string
}

func (r *recordingSigner) SignJob(j *api.Job) ([]byte, error) {
	env, err := r.Signer.SignJob(j)
	if err == nil {
		r.mu.Lock()
		r.hash = api.EnvelopeSHA256(env)
		r.mu.Unlock()
	}
	return env, err
}

func (r *recordingSigner) envelopeSHA256() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.hash
}
