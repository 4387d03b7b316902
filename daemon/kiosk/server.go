package kiosk

import (
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
	// Sign verifies pin once and signs the jobs. It refuses, before the
	// PIN is tried, a letter with a document the page can show that it has
	// not fetched in this token session (CodeNotViewed). The PIN buffer is
	// the controller's to zero.
	Sign(ctx context.Context, jobIDs []string, pin []byte, confirmLastAttempt bool) error
	Reject(ctx context.Context, jobID, reason string) error
	// Document returns a document of a job addressed to the present signer.
	// A document it returns counts as viewed in the present token session:
	// the Server calls it only to serve the page's GET of that document.
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
	// MaxReasonLen is the most characters of a reject reason; zero means
	// DefaultMaxReasonLen, the wire limit of a Result's detail.
	MaxReasonLen int
}

// Server is the kiosk's HTTP handler and its live-state hub.
type Server struct {
	ctl       Controller
	log       *slog.Logger
	maxReason int
	csrf      string
	boot      string // names this Server, and so this tekend process, to the page
	hosts     []string
	origins   []string
	page      *template.Template
	static    http.Handler
	mux       *http.ServeMux

	mu     sync.Mutex
	latest []byte // the last published View, JSON
	subs   map[chan []byte]struct{}
	closed chan struct{} // ends every event stream at shutdown
	once   sync.Once
}

// New builds a Server. Its CSRF token and its boot id are random for the
// life of the process.
func New(opts Options) (*Server, error) {
	_, port, err := net.SplitHostPort(opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("kiosk address %q: %w", opts.Addr, err)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MaxReasonLen <= 0 {
		opts.MaxReasonLen = DefaultMaxReasonLen
	}
	tok := make([]byte, 32)
	if _, err := rand.Read(tok); err != nil {
		return nil, fmt.Errorf("csrf token: %w", err)
	}
	boot := make([]byte, 12)
	if _, err := rand.Read(boot); err != nil {
		return nil, fmt.Errorf("boot id: %w", err)
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
		ctl:       opts.Controller,
		log:       opts.Logger,
		maxReason: opts.MaxReasonLen,
		csrf:      base64.RawURLEncoding.EncodeToString(tok),
		boot:      base64.RawURLEncoding.EncodeToString(boot),
		page:      page,
		static:    http.StripPrefix("/static/", http.FileServerFS(static)),
		subs:      make(map[chan []byte]struct{}),
		closed:    make(chan struct{}),
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
	s.mux.HandleFunc("GET /api/session", s.serveSession)
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
			if errors.Is(err, errStaleToken) {
				// Only a same-origin JSON request gets this far: the
				// page of an earlier tekend, which fetches the new
				// token and asks the official to try again.
				writeMessage(w, http.StatusForbidden, Message{Code: CodeSessionStale})
				return
			}
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
		return errStaleToken
	}
	return nil
}

// errStaleToken: a state change without this Server's CSRF token. The page
// sends the one it was served with, so in practice the page is older than
// this tekend.
var errStaleToken = errors.New("missing or wrong CSRF token")

// checkSameOriginRead refuses a read that a browser marks as another
// origin's or as no fetch of the page's own. Browsers that send neither
// header are held off by the exact Host match and the same-origin policy,
// as for the page itself.
func (s *Server) checkSameOriginRead(r *http.Request) error {
	if o := r.Header.Get("Origin"); o != "" && !slices.Contains(s.origins, o) {
		return fmt.Errorf("origin %q not allowed", o)
	}
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" {
		return fmt.Errorf("sec-fetch-site %q not allowed", site)
	}
	if mode := r.Header.Get("Sec-Fetch-Mode"); mode != "" && mode != "cors" && mode != "same-origin" {
		return fmt.Errorf("sec-fetch-mode %q not allowed", mode)
	}
	return nil
}

// checkDocumentRead refuses a document read that a browser marks as made
// by another site or from another origin. Unlike checkSameOriginRead it
// takes any fetch mode, so the page may show a document in an img or a
// frame as well as fetch it; "none" is a user's own navigation.
func (s *Server) checkDocumentRead(r *http.Request) error {
	if o := r.Header.Get("Origin"); o != "" && !slices.Contains(s.origins, o) {
		return fmt.Errorf("origin %q not allowed", o)
	}
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		return fmt.Errorf("sec-fetch-site %q not allowed", site)
	}
	return nil
}

// session is what GET /api/session answers.
type session struct {
	CSRF string `json:"csrf"`
	Boot string `json:"boot"`
}

// serveSession gives an open page the CSRF token of this tekend, and its
// boot id. A page served by an earlier tekend still holds that one's token;
// when its event stream comes back with another boot, or a state change is
// refused with err_session_stale, it fetches the token here and goes on,
// without a reload that would lose what the official sees. The token is no
// more exposed than by GET /, which carries it: only a request naming this
// terminal in Host gets it, no other origin may read the answer, and a
// request the browser marks cross-origin is refused.
func (s *Server) serveSession(w http.ResponseWriter, r *http.Request) {
	if err := s.checkSameOriginRead(r); err != nil {
		s.log.Warn("kiosk request refused", "path", r.URL.Path, "reason", err.Error())
		http.Error(w, err.Error(), http.StatusForbidden)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(session{CSRF: s.csrf, Boot: s.boot})
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
	if err := s.page.Execute(w, map[string]any{"Lang": lang, "CSRF": s.csrf, "Boot": s.boot, "MaxReason": s.maxReason}); err != nil {
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

// Publish sends a new view to every open page, stamped with the boot id.
func (s *Server) Publish(v View) {
	if v.Jobs == nil {
		v.Jobs = []Job{}
	}
	if slices.ContainsFunc(v.Jobs, func(j Job) bool { return j.Fields == nil }) {
		v.Jobs = slices.Clone(v.Jobs) // the caller's stay as they are
		for i := range v.Jobs {
			if v.Jobs[i].Fields == nil {
				v.Jobs[i].Fields = []Field{}
			}
		}
	}
	v.Boot = s.boot
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
	// A page whose stream ends (tekend restarts) tries again after this
	// many milliseconds, not the browser's default of seconds.
	if _, err := fmt.Fprintf(w, "retry: %d\n\n", reconnectAfter.Milliseconds()); err != nil {
		return
	}
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

// reconnectAfter is how soon a page's event stream connects again.
const reconnectAfter = time.Second

// serveDocument serves one document to the page. A document served counts
// as viewed (Controller.Document), so only a GET the page itself may have
// made gets one: a HEAD, which would count it without showing it, is
// refused, and so is a request a browser marks as another site's (an image
// or frame of a foreign page, say). Documents the page shows (Renderable)
// go out with their own type; anything else only as a download inside a
// sandbox.
func (s *Server) serveDocument(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if err := s.checkDocumentRead(r); err != nil {
		s.log.Warn("kiosk request refused", "path", r.URL.Path, "reason", err.Error())
		http.Error(w, err.Error(), http.StatusForbidden)
		return
	}
	job := r.PathValue("job")
	idx, ok := parseIndex(r.PathValue("index"))
	if !ok || !validJobID(job) {
		s.refuse(w, r, badRequest("want /api/documents/{job id}/{index}"))
		return
	}
	mt, body, err := s.ctl.Document(r.Context(), job, idx)
	if err != nil {
		s.log.Info("document not served", "err", err)
		http.NotFound(w, r)
		return
	}
	if !Renderable(mt) {
		mt = "application/octet-stream"
		w.Header().Set("Content-Disposition", "attachment")
		w.Header().Set("Content-Security-Policy", "sandbox; default-src 'none'")
	}
	w.Header().Set("Content-Type", mt)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	_, _ = w.Write(body)
}

func writeResult(w http.ResponseWriter, err error) {
	if err == nil {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"ok":true}`)
		return
	}
	m := messageOf(err)
	status := http.StatusConflict
	if m.Code == CodeInternal {
		status = http.StatusInternalServerError
	}
	writeMessage(w, status, m)
}

func writeMessage(w http.ResponseWriter, status int, m Message) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": m})
}

// refuse answers a request the kiosk cannot take with 400 and the
// catalogue code of err, a *requestError.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, err error) {
	m := Message{Code: CodeBadRequest}
	var re *requestError
	if errors.As(err, &re) {
		m = Message{Code: re.code, Params: re.params}
	}
	s.log.Info("kiosk request refused", "path", r.URL.Path, "code", m.Code, "err", err.Error())
	writeMessage(w, http.StatusBadRequest, m)
}

// handleSign reads the request into one buffer of its own, takes the PIN
// out of it without a string or a decoder's copy, hands the controller a
// copy of its own and wipes both before it returns.
func (s *Server) handleSign(w http.ResponseWriter, r *http.Request) {
	data, buf, err := readBody(w, r, maxSignBody)
	defer wipe(buf)
	if err != nil {
		s.refuse(w, r, err)
		return
	}
	req, err := parseSignRequest(data)
	if err != nil {
		s.refuse(w, r, err)
		return
	}
	pin := make([]byte, len(req.PIN))
	copy(pin, req.PIN)
	defer clear(pin)
	wipe(buf)
	writeResult(w, s.ctl.Sign(r.Context(), req.JobIDs, pin, req.ConfirmLast))
}

func (s *Server) handleReject(w http.ResponseWriter, r *http.Request) {
	data, _, err := readBody(w, r, maxBody)
	if err != nil {
		s.refuse(w, r, err)
		return
	}
	req, err := parseRejectRequest(data)
	if err != nil {
		s.refuse(w, r, err)
		return
	}
	reason, err := normalizeReason(req.Reason, s.maxReason)
	if err != nil {
		s.refuse(w, r, err)
		return
	}
	writeResult(w, s.ctl.Reject(r.Context(), req.JobID, reason))
}

func (s *Server) handleDismiss(w http.ResponseWriter, r *http.Request) {
	data, _, err := readBody(w, r, maxBody)
	if err == nil {
		err = parseEmptyObject(data)
	}
	if err != nil {
		s.refuse(w, r, err)
		return
	}
	s.ctl.Dismiss(r.Context())
	writeResult(w, nil)
}

func (s *Server) handleLanguage(w http.ResponseWriter, r *http.Request) {
	data, _, err := readBody(w, r, maxBody)
	var lang string
	if err == nil {
		lang, err = parseLanguageRequest(data)
	}
	if err == nil && !slices.Contains(Languages, lang) {
		err = badRequest("language not offered")
	}
	if err != nil {
		s.refuse(w, r, err)
		return
	}
	s.ctl.SetLanguage(lang)
	writeResult(w, nil)
}
