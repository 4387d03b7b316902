package gateway

import (
	"bytes"
	"context"
	"crypto/x509"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/gateway/store"
	"github.com/tekenid/teken/validation"
)

//go:embed openapi.yaml
var openAPI []byte

// routes is the gateway's HTTP API. Every /v1 route but the API's own
// description needs a client's key.
func (g *Gateway) routes() http.Handler {
	mux := http.NewServeMux()
	api := func(pattern string, h func(w http.ResponseWriter, r *http.Request, cl *client) *apiError) {
		mux.Handle(pattern, g.instrument(pattern, g.authenticated(h)))
	}
	api("POST /v1/letters", g.submit)
	api("GET /v1/letters", g.list)
	api("GET /v1/letters/{id}", g.letter)
	api("POST /v1/letters/{id}/cancel", g.cancel)
	api("GET /v1/letters/{id}/result", g.result)
	api("GET /v1/letters/{id}/documents/{doc}/signed", g.signed)
	api("GET /v1/letters/{id}/documents/{doc}/report", g.report)
	api("GET /v1/letters/{id}/deliveries", g.deliveries)
	api("GET /v1/events", g.events)
	api("GET /v1/terminals", g.terminals)
	mux.Handle("GET /v1/openapi.yaml", g.instrument("GET /v1/openapi.yaml", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/yaml")
		_, _ = w.Write(openAPI)
	})))
	mux.Handle("GET /metrics", promhttp.HandlerFor(g.metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", g.readyz)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		// A known path with another method is 405, anything else 404.
		if _, pattern := mux.Handler(&http.Request{Method: http.MethodGet, URL: r.URL, Host: r.Host}); pattern != "" && pattern != "/" {
			writeError(w, fail(http.StatusMethodNotAllowed, "method_not_allowed", "method", r.Method))
			return
		}
		writeError(w, fail(http.StatusNotFound, "no_route"))
	})
	return mux
}

// authenticated runs h for the client whose key the request bears,
// audits the call, and writes h's error as JSON. A panic in h answers
// 500 and is logged rather than ending the gateway.
func (g *Gateway) authenticated(h func(http.ResponseWriter, *http.Request, *client) *apiError) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		cl := g.keys.authenticate(r)
		defer func() {
			if p := recover(); p != nil {
				g.log.Error("handler panicked", "path", r.URL.Path, "panic", fmt.Sprint(p))
				if !rec.wrote {
					writeError(rec, fail(http.StatusInternalServerError, "internal"))
				}
			}
			id := ""
			if cl != nil {
				id = cl.id
			}
			e := store.AuditEntry{At: time.Now().UTC(), Client: id, Method: r.Method, Path: r.URL.Path, Status: rec.status,
				LetterID: r.PathValue("id"), Remote: r.RemoteAddr}
			if err := g.store.Audit(context.WithoutCancel(r.Context()), e); err != nil {
				g.log.Error("audit an API call", "path", r.URL.Path, "err", err)
			}
		}()
		if cl == nil {
			writeError(rec, fail(http.StatusUnauthorized, "unauthorized"))
			return
		}
		if aerr := h(rec, r, cl); aerr != nil {
			if aerr.status >= 500 {
				g.log.Error("API call failed", "path", r.URL.Path, "client", cl.id, "err", aerr)
			}
			writeError(rec, aerr)
		}
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (s *statusRecorder) WriteHeader(code int) {
	if !s.wrote {
		s.status, s.wrote = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	s.wrote = true
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// storeFailure is the answer to a store error that is not the caller's.
func (g *Gateway) storeFailure(err error) *apiError {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fail(http.StatusServiceUnavailable, "unavailable")
	}
	g.log.Error("store", "err", err)
	return fail(http.StatusServiceUnavailable, "unavailable")
}

func (g *Gateway) submit(w http.ResponseWriter, r *http.Request, cl *client) *apiError {
	key := r.Header.Get("Idempotency-Key")
	if len(key) > 200 || strings.ContainsFunc(key, func(c rune) bool { return c < 0x21 || c > 0x7e }) {
		return malformed("Idempotency-Key: at most 200 visible ASCII characters")
	}
	req, hash, aerr := readSubmit(r, g.cfg.MaxLetterBytes)
	if aerr != nil {
		return aerr
	}
	now := time.Now().UTC()
	job, aerr := g.buildJob(cl, req, now)
	if aerr != nil {
		return aerr
	}
	env, err := g.signer.SignJob(job)
	if err != nil {
		return malformed("%v", err)
	}
	if len(env) > g.maxEnvelope {
		return fail(http.StatusRequestEntityTooLarge, "too_large", "limit", strconv.Itoa(g.maxEnvelope))
	}
	l := &store.Letter{ID: job.JobID, Client: cl.id, IdempotencyKey: key, RequestSHA256: hash, Terminal: job.Terminal,
		SignerCert: job.Signer.CertSHA256, SignerNIP: job.Signer.NIP, Title: job.Title, Number: job.Number,
		ExpiresAt: job.ExpiresAt, Envelope: env}
	stored, created, err := g.store.Create(r.Context(), l)
	switch {
	case errors.Is(err, store.ErrIdempotencyMismatch):
		return fail(http.StatusConflict, "idempotency_mismatch", "key", key)
	case err != nil:
		return g.storeFailure(err)
	}
	status := http.StatusOK // the same request again: the letter it made
	if created {
		status = http.StatusCreated
		g.metrics.submitted.Inc()
		g.log.Info("letter submitted", "letter", stored.ID, "client", cl.id, "terminal", stored.Terminal, "documents", len(job.Documents))
		select {
		case g.kick <- struct{}{}:
		default:
		}
	}
	w.Header().Set("Location", "/v1/letters/"+stored.ID)
	writeJSON(w, status, viewOf(stored, true))
	return nil
}

// own returns the client's letter id, or not found: another client's
// letters do not exist for it.
func (g *Gateway) own(r *http.Request, cl *client) (*store.Letter, *apiError) {
	id := r.PathValue("id")
	if api.ValidJobID(id) != nil {
		return nil, fail(http.StatusNotFound, "not_found")
	}
	l, err := g.store.Get(r.Context(), id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, fail(http.StatusNotFound, "not_found")
	case err != nil:
		return nil, g.storeFailure(err)
	case l.Client != cl.id:
		return nil, fail(http.StatusNotFound, "not_found")
	}
	return l, nil
}

func (g *Gateway) letter(w http.ResponseWriter, r *http.Request, cl *client) *apiError {
	l, aerr := g.own(r, cl)
	if aerr != nil {
		return aerr
	}
	writeJSON(w, http.StatusOK, viewOf(l, true))
	return nil
}

func (g *Gateway) list(w http.ResponseWriter, r *http.Request, cl *client) *apiError {
	q := r.URL.Query()
	query := store.Query{Client: cl.id, State: store.State(q.Get("state")), Signer: q.Get("signer"), Terminal: q.Get("terminal"), After: q.Get("cursor")}
	if query.State != "" && !query.State.Known() {
		return malformed("state %q: not a letter state", query.State)
	}
	if query.After != "" && api.ValidJobID(query.After) != nil {
		return malformed("cursor %q: not a cursor this API gave", query.After)
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > store.MaxPage {
			return malformed("limit %q: want 1 to %d", s, store.MaxPage)
		}
		query.Limit = n
	}
	page, err := g.store.List(r.Context(), query)
	if err != nil {
		return g.storeFailure(err)
	}
	out := ListView{Letters: []LetterView{}, NextCursor: page.Next}
	for _, l := range page.Letters {
		out.Letters = append(out.Letters, viewOf(l, false))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// CancelRequest is the body of POST /v1/letters/{id}/cancel, optional.
type CancelRequest struct {
	Reason string `json:"reason,omitempty"`
}

func (g *Gateway) cancel(w http.ResponseWriter, r *http.Request, cl *client) *apiError {
	l, aerr := g.own(r, cl)
	if aerr != nil {
		return aerr
	}
	var req CancelRequest
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 4096))
	if err != nil {
		return readFailure(err, 4096)
	}
	if len(bytes.TrimSpace(raw)) > 0 {
		if err := decodeStrict(raw, &req); err != nil {
			return malformed("%v", err)
		}
	}
	if len(req.Reason) > 500 {
		return malformed("reason: at most 500 bytes")
	}
	var publish bool
	l, err = g.store.Change(r.Context(), l.ID, func(l *store.Letter) (bool, error) {
		switch {
		case l.State.Final():
			return false, store.ErrFinal
		case l.State == store.Queued:
			// Never on the broker: withdrawn here and now.
			l.State, l.Reason, l.Detail, l.CancelAsked = store.Cancelled, "cancelled", req.Reason, true
			return true, nil
		default:
			publish = true
			if l.CancelAsked {
				return false, nil
			}
			l.CancelAsked = true
			return true, nil
		}
	})
	switch {
	case errors.Is(err, store.ErrFinal):
		cur, _ := g.store.Get(r.Context(), r.PathValue("id"))
		st := ""
		if cur != nil {
			st = string(cur.State)
		}
		return fail(http.StatusConflict, "letter_final", "state", st)
	case err != nil:
		return g.storeFailure(err)
	}
	if publish {
		// The terminal's answer (a cancelled result, or the signed one
		// if the official was quicker) makes the letter final; a cancel
		// lost on the way is sent again when the client asks again.
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
		defer cancel()
		if err := g.disp.Cancel(ctx, l.Terminal, l.ID, req.Reason); err != nil {
			g.log.Warn("cancel not published yet", "letter", l.ID, "err", err)
			return fail(http.StatusServiceUnavailable, "unavailable")
		}
	}
	g.feed.wake()
	writeJSON(w, http.StatusAccepted, viewOf(l, true))
	return nil
}

func (g *Gateway) result(w http.ResponseWriter, r *http.Request, cl *client) *apiError {
	l, aerr := g.own(r, cl)
	if aerr != nil {
		return aerr
	}
	if l.Result == nil {
		return fail(http.StatusNotFound, "not_signed", "state", string(l.State))
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(l.Result)
	return nil
}

// signed serves a signed document: the signed PDF (pades), the CMS
// SignedData (cms, DER) or the bare signature (raw).
func (g *Gateway) signed(w http.ResponseWriter, r *http.Request, cl *client) *apiError {
	l, aerr := g.own(r, cl)
	if aerr != nil {
		return aerr
	}
	if l.State != store.Signed || l.Result == nil {
		return fail(http.StatusNotFound, "not_signed", "state", string(l.State))
	}
	res, err := api.DecodeResult(l.Result)
	if err != nil {
		return fail(http.StatusInternalServerError, "internal")
	}
	doc := r.PathValue("doc")
	for _, d := range res.Documents {
		if d.ID != doc {
			continue
		}
		switch d.Format {
		case api.FormatPAdES:
			w.Header().Set("Content-Type", "application/pdf")
			w.Header().Set("Content-Disposition", `attachment; filename="`+d.ID+`.pdf"`)
		case api.FormatCMS:
			w.Header().Set("Content-Type", "application/pkcs7-signature")
			w.Header().Set("Content-Disposition", `attachment; filename="`+d.ID+`.p7s"`)
		default:
			w.Header().Set("Content-Type", "application/octet-stream")
		}
		w.Header().Set("X-Content-Type-Options", "nosniff")
		_, _ = w.Write(d.Signature)
		return nil
	}
	return fail(http.StatusNotFound, "no_document", "document", doc)
}

// report checks a signed document as tekenctl verify does, against the
// document as the letter carried it and the officials' CAs of
// signer_ca_files, and answers the validation report (the verdict
// tekenctl verify --json prints).
func (g *Gateway) report(w http.ResponseWriter, r *http.Request, cl *client) *apiError {
	l, aerr := g.own(r, cl)
	if aerr != nil {
		return aerr
	}
	if l.State != store.Signed || l.Result == nil {
		return fail(http.StatusNotFound, "not_signed", "state", string(l.State))
	}
	res, err := api.DecodeResult(l.Result)
	if err != nil {
		return fail(http.StatusInternalServerError, "internal")
	}
	job, err := jobOf(l.Envelope)
	if err != nil {
		return fail(http.StatusInternalServerError, "internal")
	}
	doc := r.PathValue("doc")
	var content []byte
	for _, d := range job.Documents {
		if d.ID == doc {
			content = d.Content
		}
	}
	for _, d := range res.Documents {
		if d.ID != doc {
			continue
		}
		var cert *x509.Certificate
		if len(res.SignerCert) > 0 {
			cert, _ = x509.ParseCertificate(res.SignerCert) // a bad one fails the chain check
		}
		ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
		defer cancel()
		v := validation.VerifyDocument(ctx, d, content, cert, validation.Trust{Roots: g.roots})
		v.Document = doc
		writeJSON(w, http.StatusOK, v)
		return nil
	}
	return fail(http.StatusNotFound, "no_document", "document", doc)
}
