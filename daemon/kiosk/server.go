package kiosk

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Controller is what the page acts on; the daemon's signing flow implements
// it. Errors meant for the official are *UserError.
type Controller interface {
	// Sign verifies pin once and signs the jobs. The PIN buffer is the
	// controller's to zero.
	Sign(ctx context.Context, jobIDs []string, pin []byte, confirmLastAttempt bool) error
	Reject(ctx context.Context, jobID, reason string) error
	// Document returns a document of a job addressed to the present signer.
	Document(ctx context.Context, jobID string, index int) (mediaType string, body []byte, err error)
	// Dismiss leaves the done screen.
	Dismiss(ctx context.Context)
	SetLanguage(lang string)
}

// Options configures a Server.
type Options struct {
	// Addr is the host:port the kiosk listens on; requests must name it
	// (or localhost / 127.0.0.1 / [::1] with the same port) in Host.
	Addr       string
	Controller Controller
	Logger     *slog.Logger
}

// Server is the kiosk's HTTP handler and its live-state hub.
type Server struct {
	ctl     Controller
	log     *slog.Logger
	csrf    string
	hosts   []string
	origins []string
	page    *template.Template
	static  http.Handler
	mux     *http.ServeMux

	mu     sync.Mutex
	latest []byte // the last published View, JSON
	subs   map[chan []byte]struct{}
	closed chan struct{} // ends every event stream at shutdown
	once   sync.Once
}

// maxBody bounds every POST body; the largest is a batch of job ids.
const maxBody = 64 << 10

// New builds a Server. Its CSRF token is random for the life of the process.
func New(opts Options) (*Server, error) {
	_, port, err := net.SplitHostPort(opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("kiosk address %q: %w", opts.Addr, err)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	tok := make([]byte, 32)
	if _, err := rand.Read(tok); err != nil {
		return nil, fmt.Errorf("csrf token: %w", err)
	}
	page, err := template.ParseFS(webFiles, "web/index.html")
	if err != nil {
		return nil, fmt.Errorf("parse kiosk page: %w", err)
	}
	static, err := fs.Sub(webFiles, "web")
	if err != nil {
		return nil, err
	}
	s := &Server{
		ctl:    opts.Controller,
		log:    opts.Logger,
		csrf:   base64.RawURLEncoding.EncodeToString(tok),
		page:   page,
		static: http.StripPrefix("/static/", http.FileServerFS(static)),
		subs:   make(map[chan []byte]struct{}),
		closed: make(chan struct{}),
	}
	for _, h := range []string{"127.0.0.1", "localhost", "[::1]"} {
		s.hosts = append(s.hosts, h+":"+port)
	}
	if host, _, _ := net.SplitHostPort(opts.Addr); host != "" && !slices.Contains(s.hosts, opts.Addr) {
		s.hosts = append(s.hosts, net.JoinHostPort(host, port))
	}
	for _, h := range s.hosts {
		s.origins = append(s.origins, "http://"+h)
	}
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("GET /{$}", s.servePage)
	s.mux.HandleFunc("GET /static/", s.serveStatic)
	s.mux.HandleFunc("GET /api/events", s.serveEvents)
	s.mux.HandleFunc("GET /api/documents/{job}/{index}", s.serveDocument)
	s.mux.HandleFunc("POST /api/sign", s.handleSign)
	s.mux.HandleFunc("POST /api/reject", s.handleReject)
	s.mux.HandleFunc("POST /api/dismiss", s.handleDismiss)
	s.mux.HandleFunc("POST /api/language", s.handleLanguage)
	s.Publish(View{State: StateIdle, Lang: Languages[0], Jobs: []Job{}})
	return s, nil
}

// ServeHTTP checks Host on every request, and the state-change rules on
// every POST, before routing.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; worker-src 'self'; frame-src 'self'; object-src 'none'; img-src 'self' data: blob:; font-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'self'")
	h.Set("X-Frame-Options", "SAMEORIGIN")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	// An exact Host match defeats DNS rebinding: a rebound name still
	// carries the attacker's host name.
	if !slices.Contains(s.hosts, r.Host) {
		http.Error(w, "unknown host", http.StatusMisdirectedRequest)
		return
	}
	if r.Method == http.MethodPost {
		if err := s.checkStateChange(r); err != nil {
			s.log.Warn("kiosk request refused", "path", r.URL.Path, "reason", err.Error())
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
	} else if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	s.mux.ServeHTTP(w, r)
}

func (s *Server) checkStateChange(r *http.Request) error {
	if o := r.Header.Get("Origin"); !slices.Contains(s.origins, o) {
		return fmt.Errorf("origin %q not allowed", o)
	}
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" {
		return fmt.Errorf("sec-fetch-site %q not allowed", site)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		return fmt.Errorf("content type %q not allowed", ct)
	}
	tok := r.Header.Get("X-Teken-CSRF")
	if subtle.ConstantTimeCompare([]byte(tok), []byte(s.csrf)) != 1 {
		return errors.New("missing or wrong CSRF token")
	}
	return nil
}

func (s *Server) servePage(w http.ResponseWriter, r *http.Request) {
	var lang string
	var v struct {
		Lang string `json:"lang"`
	}
	s.mu.Lock()
	_ = json.Unmarshal(s.latest, &v)
	s.mu.Unlock()
	lang = v.Lang
	if lang == "" {
		lang = Languages[0]
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := s.page.Execute(w, map[string]string{"Lang": lang, "CSRF": s.csrf}); err != nil {
		s.log.Error("render kiosk page", "err", err)
	}
}

func (s *Server) serveStatic(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/static/index.html" {
		http.NotFound(w, r)
		return
	}
	s.static.ServeHTTP(w, r)
}

// Close ends every open event stream, so that http.Server.Shutdown, which
// waits for active requests, does not wait on pages that never leave.
func (s *Server) Close() { s.once.Do(func() { close(s.closed) }) }

// Publish sends a new view to every open page.
func (s *Server) Publish(v View) {
	if v.Jobs == nil {
		v.Jobs = []Job{}
	}
	b, err := json.Marshal(v)
	if err != nil {
		s.log.Error("encode kiosk view", "err", err)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latest = b
	for ch := range s.subs {
		// Each subscriber holds at most the newest view: a slow page
		// skips stale states instead of blocking the flow.
		select {
		case <-ch:
		default:
		}
		ch <- b
	}
}

func (s *Server) subscribe() (chan []byte, func()) {
	ch := make(chan []byte, 1)
	s.mu.Lock()
	s.subs[ch] = struct{}{}
	ch <- s.latest
	s.mu.Unlock()
	return ch, func() {
		s.mu.Lock()
		delete(s.subs, ch)
		s.mu.Unlock()
	}
}

func (s *Server) serveEvents(w http.ResponseWriter, r *http.Request) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	ch, cancel := s.subscribe()
	defer cancel()
	keepalive := time.NewTicker(20 * time.Second)
	defer keepalive.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-s.closed:
			return
		case b := <-ch:
			if _, err := fmt.Fprintf(w, "event: view\ndata: %s\n\n", b); err != nil {
				return
			}
			flusher.Flush()
		case <-keepalive.C:
			if _, err := io.WriteString(w, ": keepalive\n\n"); err != nil {
				return
			}
			flusher.Flush()
		}
	}
}

// inlineTypes are shown in the page; anything else is offered as a download
// inside a sandbox.
var inlineTypes = []string{"application/pdf", "text/plain", "image/png", "image/jpeg"}

func (s *Server) serveDocument(w http.ResponseWriter, r *http.Request) {
	idx, err := strconv.Atoi(r.PathValue("index"))
	if err != nil || idx < 0 {
		http.NotFound(w, r)
		return
	}
	mt, body, err := s.ctl.Document(r.Context(), r.PathValue("job"), idx)
	if err != nil {
		s.log.Info("document not served", "err", err)
		http.NotFound(w, r)
		return
	}
	if !slices.Contains(inlineTypes, mt) {
		mt = "application/octet-stream"
		w.Header().Set("Content-Disposition", "attachment")
		w.Header().Set("Content-Security-Policy", "sandbox; default-src 'none'")
	}
	w.Header().Set("Content-Type", mt)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	_, _ = w.Write(body)
}

// readJSON decodes the body strictly into v and returns the raw buffer, which
// the caller zeroes when it held a PIN.
func readJSON(r *http.Request, v any) ([]byte, error) {
	raw, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBody))
	if err != nil {
		return raw, fmt.Errorf("read body: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return raw, fmt.Errorf("decode body: %w", err)
	}
	return raw, nil
}

func writeResult(w http.ResponseWriter, err error) {
	w.Header().Set("Content-Type", "application/json")
	if err == nil {
		_, _ = io.WriteString(w, `{"ok":true}`)
		return
	}
	m := messageOf(err)
	status := http.StatusConflict
	if m.Code == CodeInternal {
		status = http.StatusInternalServerError
	}
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": m})
}

type signRequest struct {
	JobIDs []string `json:"job_ids"`
	// PIN stays raw JSON so that it lands in a byte slice the server can
	// zero, never in an immutable string.
	PIN         json.RawMessage `json:"pin"`
	ConfirmLast bool            `json:"confirm_last_attempt"`
}

func (s *Server) handleSign(w http.ResponseWriter, r *http.Request) {
	var req signRequest
	raw, err := readJSON(r, &req)
	defer clear(raw)
	defer clear(req.PIN)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	pin, err := pinBytes(req.PIN)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	defer clear(pin)
	if len(req.JobIDs) == 0 {
		http.Error(w, "no jobs selected", http.StatusBadRequest)
		return
	}
	writeResult(w, s.ctl.Sign(r.Context(), req.JobIDs, pin, req.ConfirmLast))
}

// pinBytes takes the PIN out of its JSON string without a string copy. A PIV
// PIN is 6-8 characters; only letters and digits are accepted, which also
// rules out JSON escapes.
func pinBytes(raw json.RawMessage) ([]byte, error) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return nil, errors.New("pin: want a JSON string")
	}
	inner := raw[1 : len(raw)-1]
	if len(inner) < 6 || len(inner) > 8 {
		return nil, errors.New("pin: want 6 to 8 characters")
	}
	for _, c := range inner {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return nil, errors.New("pin: letters and digits only")
		}
	}
	pin := make([]byte, len(inner))
	copy(pin, inner)
	return pin, nil
}

func (s *Server) handleReject(w http.ResponseWriter, r *http.Request) {
	var req struct {
		JobID  string `json:"job_id"`
		Reason string `json:"reason"`
	}
	if _, err := readJSON(r, &req); err != nil || req.JobID == "" || len(req.Reason) > 500 {
		http.Error(w, "want job_id and a reason of at most 500 bytes", http.StatusBadRequest)
		return
	}
	writeResult(w, s.ctl.Reject(r.Context(), req.JobID, req.Reason))
}

func (s *Server) handleDismiss(w http.ResponseWriter, r *http.Request) {
	var req struct{}
	if _, err := readJSON(r, &req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.ctl.Dismiss(r.Context())
	writeResult(w, nil)
}

func (s *Server) handleLanguage(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Lang string `json:"lang"`
	}
	if _, err := readJSON(r, &req); err != nil || !slices.Contains(Languages, req.Lang) {
		http.Error(w, "want lang id or en", http.StatusBadRequest)
		return
	}
	s.ctl.SetLanguage(req.Lang)
	writeResult(w, nil)
}
