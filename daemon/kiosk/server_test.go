package kiosk

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
)

type recorder struct {
	mu    sync.Mutex
	pins  []string
	jobs  [][]string
	last  bool
	err   error
	lang  string
	rejct []string
}

func (c *recorder) Sign(_ context.Context, ids []string, pin []byte, confirm bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pins = append(c.pins, string(pin))
	c.jobs = append(c.jobs, ids)
	c.last = confirm
	return c.err
}
func (c *recorder) Reject(_ context.Context, id, reason string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rejct = append(c.rejct, id+":"+reason)
	return nil
}
func (c *recorder) Document(_ context.Context, id string, i int) (string, []byte, error) {
	if id == "j1" && i == 0 {
		return "application/pdf", []byte("%PDF-1.7 test"), nil
	}
	if id == "j1" && i == 1 {
		return "text/html", []byte("<script>alert(1)</script>"), nil
	}
	return "", nil, errors.New("not for this signer")
}
func (c *recorder) Dismiss(context.Context) {}
func (c *recorder) SetLanguage(l string)    { c.mu.Lock(); c.lang = l; c.mu.Unlock() }

func newTestServer(t *testing.T) (*Server, *recorder, *httptest.Server) {
	t.Helper()
	ctl := &recorder{}
	// The handler is mounted on a test listener; Addr only fixes the port
	// that Host and Origin must carry.
	ts := httptest.NewUnstartedServer(nil)
	ts.Start()
	t.Cleanup(ts.Close)
	s, err := New(Options{Addr: ts.Listener.Addr().String(), Controller: ctl})
	if err != nil {
		t.Fatal(err)
	}
	ts.Config.Handler = s
	return s, ctl, ts
}

func csrfOf(t *testing.T, ts *httptest.Server) string {
	t.Helper()
	res, err := http.Get(ts.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	m := regexp.MustCompile(`name="csrf-token" content="([^"]+)"`).FindSubmatch(body)
	if m == nil {
		t.Fatalf("no csrf token in page:\n%s", body)
	}
	if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
		t.Errorf("page CSP = %q", csp)
	}
	return string(m[1])
}

func post(t *testing.T, ts *httptest.Server, path, body string, hdr map[string]string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, ts.URL+path, strings.NewReader(body))
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { res.Body.Close() })
	return res
}

func TestStateChangeDefences(t *testing.T) {
	_, ctl, ts := newTestServer(t)
	tok := csrfOf(t, ts)
	good := func() map[string]string {
		return map[string]string{"Origin": ts.URL, "Content-Type": "application/json", "X-Teken-CSRF": tok}
	}
	body := `{"job_ids":["j1"],"pin":"123456"}`
	cases := []struct {
		name   string
		mutate func(h map[string]string)
		body   string
		want   int
	}{
		{"accepted", func(map[string]string) {}, body, http.StatusOK},
		{"rebound host", func(h map[string]string) { h["Host"] = "evil.example:80" }, body, http.StatusMisdirectedRequest},
		{"no origin", func(h map[string]string) { delete(h, "Origin") }, body, http.StatusForbidden},
		{"foreign origin", func(h map[string]string) { h["Origin"] = "http://evil.example" }, body, http.StatusForbidden},
		{"cross site fetch", func(h map[string]string) { h["Sec-Fetch-Site"] = "cross-site" }, body, http.StatusForbidden},
		{"form post", func(h map[string]string) { h["Content-Type"] = "application/x-www-form-urlencoded" }, body, http.StatusForbidden},
		{"no csrf", func(h map[string]string) { delete(h, "X-Teken-CSRF") }, body, http.StatusForbidden},
		{"wrong csrf", func(h map[string]string) { h["X-Teken-CSRF"] = tok + "x" }, body, http.StatusForbidden},
		{"unknown field", func(map[string]string) {}, `{"job_ids":["j1"],"pin":"123456","x":1}`, http.StatusBadRequest},
		{"short pin", func(map[string]string) {}, `{"job_ids":["j1"],"pin":"123"}`, http.StatusBadRequest},
		{"escaped pin", func(map[string]string) {}, `{"job_ids":["j1"],"pin":"12\u00334567"}`, http.StatusBadRequest},
		{"numeric pin", func(map[string]string) {}, `{"job_ids":["j1"],"pin":123456}`, http.StatusBadRequest},
		{"no jobs", func(map[string]string) {}, `{"job_ids":[],"pin":"123456"}`, http.StatusBadRequest},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := good()
			tc.mutate(h)
			if res := post(t, ts, "/api/sign", tc.body, h); res.StatusCode != tc.want {
				b, _ := io.ReadAll(res.Body)
				t.Fatalf("status %d, want %d: %s", res.StatusCode, tc.want, b)
			}
		})
	}
	if len(ctl.pins) != 1 || ctl.pins[0] != "123456" {
		t.Fatalf("controller saw PINs %q, want exactly the accepted one", ctl.pins)
	}
}

func TestGetMustNotChangeState(t *testing.T) {
	_, ctl, ts := newTestServer(t)
	res, err := http.Get(ts.URL + "/api/sign")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusMethodNotAllowed || len(ctl.pins) != 0 {
		t.Fatalf("GET /api/sign: status %d, signs %d", res.StatusCode, len(ctl.pins))
	}
}

func TestSignErrorReachesPageAsMessage(t *testing.T) {
	_, ctl, ts := newTestServer(t)
	ctl.err = NewUserError(CodeWrongPIN, errors.New("verify: 63c2"), map[string]string{"n": "2"})
	tok := csrfOf(t, ts)
	res := post(t, ts, "/api/sign", `{"job_ids":["j1"],"pin":"654321"}`,
		map[string]string{"Origin": ts.URL, "Content-Type": "application/json", "X-Teken-CSRF": tok})
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusConflict || !strings.Contains(string(b), `"code":"err_wrong_pin"`) || strings.Contains(string(b), "63c2") {
		t.Fatalf("status %d body %s", res.StatusCode, b)
	}
	ctl.err = errors.New("disk on fire")
	res = post(t, ts, "/api/sign", `{"job_ids":["j1"],"pin":"654321"}`,
		map[string]string{"Origin": ts.URL, "Content-Type": "application/json", "X-Teken-CSRF": tok})
	b, _ = io.ReadAll(res.Body)
	if res.StatusCode != http.StatusInternalServerError || !strings.Contains(string(b), "err_internal") || strings.Contains(string(b), "fire") {
		t.Fatalf("status %d body %s", res.StatusCode, b)
	}
}

func TestDocuments(t *testing.T) {
	_, _, ts := newTestServer(t)
	res, err := http.Get(ts.URL + "/api/documents/j1/0")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "application/pdf" {
		t.Fatalf("pdf: %d %q", res.StatusCode, res.Header.Get("Content-Type"))
	}
	res, _ = http.Get(ts.URL + "/api/documents/j1/1")
	res.Body.Close()
	if ct := res.Header.Get("Content-Type"); ct != "application/octet-stream" || !strings.Contains(res.Header.Get("Content-Security-Policy"), "sandbox") {
		t.Fatalf("html document served as %q with CSP %q", ct, res.Header.Get("Content-Security-Policy"))
	}
	res, _ = http.Get(ts.URL + "/api/documents/other/0")
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound {
		t.Fatalf("foreign document: %d", res.StatusCode)
	}
}

func TestEventsStreamLatestView(t *testing.T) {
	s, _, ts := newTestServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, ts.URL+"/api/events", nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	next := func() string {
		for sc.Scan() {
			if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				return d
			}
		}
		t.Fatal("stream ended")
		return ""
	}
	if d := next(); !strings.Contains(d, `"state":"idle"`) {
		t.Fatalf("first view %s", d)
	}
	s.Publish(View{State: StateToken, Lang: "en", Signer: &Signer{Name: "Siti"}})
	if d := next(); !strings.Contains(d, `"state":"token"`) || !strings.Contains(d, "Siti") {
		t.Fatalf("second view %s", d)
	}
}

func TestStaticFilesAndPage(t *testing.T) {
	_, _, ts := newTestServer(t)
	for _, p := range []string{"/static/app.js", "/static/style.css", "/static/i18n/id.json", "/static/i18n/en.json"} {
		res, err := http.Get(ts.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Errorf("%s: %d", p, res.StatusCode)
		}
	}
	res, _ := http.Get(ts.URL + "/static/index.html")
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound {
		t.Errorf("raw template served: %d", res.StatusCode)
	}
}
