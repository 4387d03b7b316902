package kiosk

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

type recorder struct {
	mu        sync.Mutex
	pins      []string
	pinBufs   [][]byte // the buffers Sign was handed, to check they are wiped
	jobs      [][]string
	last      bool
	err       error
	rejectErr error
	lang      string
	langs     int
	rejct     []string
	dismissed int
}

func (c *recorder) Sign(_ context.Context, ids []string, pin []byte, confirm bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pins = append(c.pins, string(pin))
	c.pinBufs = append(c.pinBufs, pin)
	c.jobs = append(c.jobs, ids)
	c.last = confirm
	return c.err
}
func (c *recorder) Reject(_ context.Context, id, reason string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rejct = append(c.rejct, id+":"+reason)
	return c.rejectErr
}

// calls counts every action the controller was asked for.
func (c *recorder) calls() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pins) + len(c.rejct) + c.dismissed + c.langs
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
func (c *recorder) Dismiss(context.Context) { c.mu.Lock(); c.dismissed++; c.mu.Unlock() }
func (c *recorder) SetLanguage(l string)    { c.mu.Lock(); c.lang = l; c.langs++; c.mu.Unlock() }

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

// errorCode is the catalogue code of a JSON error answer, or "".
func errorCode(t *testing.T, res *http.Response) (string, map[string]string) {
	t.Helper()
	var out struct {
		Error *Message `json:"error"`
	}
	b, _ := io.ReadAll(res.Body)
	if err := json.Unmarshal(b, &out); err != nil || out.Error == nil {
		return "", nil
	}
	return out.Error.Code, out.Error.Params
}

// Whatever the page (or anything else that passes the state-change checks)
// sends, a request the kiosk cannot take is a 400 with a catalogue code, it
// never reaches the controller, and nothing answers 500 or panics.
func TestInvalidInputIs400WithCode(t *testing.T) {
	_, ctl, ts := newTestServer(t)
	tok := csrfOf(t, ts)
	hdr := map[string]string{"Origin": ts.URL, "Content-Type": "application/json", "X-Teken-CSRF": tok}
	ids := func(n int) string {
		var b strings.Builder
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `"j%d"`, i)
		}
		return b.String()
	}
	cases := []struct {
		name, path, body, code string
	}{
		// sign
		{"sign: empty body", "/api/sign", ``, CodeBadRequest},
		{"sign: not an object", "/api/sign", `["j1"]`, CodeBadRequest},
		{"sign: a string", "/api/sign", `"123456"`, CodeBadRequest},
		{"sign: null", "/api/sign", `null`, CodeBadRequest},
		{"sign: truncated", "/api/sign", `{"job_ids":["j1"],"pin":"123456"`, CodeBadRequest},
		{"sign: trailing data", "/api/sign", `{"job_ids":["j1"],"pin":"123456"} x`, CodeBadRequest},
		{"sign: two objects", "/api/sign", `{"job_ids":["j1"],"pin":"123456"}{}`, CodeBadRequest},
		{"sign: byte order mark", "/api/sign", "\ufeff" + `{"job_ids":["j1"],"pin":"123456"}`, CodeBadRequest},
		{"sign: unknown field", "/api/sign", `{"job_ids":["j1"],"pin":"123456","x":1}`, CodeBadRequest},
		{"sign: field in other case", "/api/sign", `{"job_ids":["j1"],"PIN":"123456"}`, CodeBadRequest},
		{"sign: escaped field name", "/api/sign", `{"job_ids":["j1"],"p\u0069n":"123456"}`, CodeBadRequest},
		{"sign: pin twice", "/api/sign", `{"job_ids":["j1"],"pin":"000000","pin":"123456"}`, CodeBadRequest},
		{"sign: job_ids twice", "/api/sign", `{"job_ids":["j1"],"job_ids":["j2"],"pin":"123456"}`, CodeBadRequest},
		{"sign: job_ids a string", "/api/sign", `{"job_ids":"j1","pin":"123456"}`, CodeBadRequest},
		{"sign: job_ids null", "/api/sign", `{"job_ids":null,"pin":"123456"}`, CodeBadRequest},
		{"sign: job id a number", "/api/sign", `{"job_ids":[1],"pin":"123456"}`, CodeBadRequest},
		{"sign: job id nested", "/api/sign", `{"job_ids":[["j1"]],"pin":"123456"}`, CodeBadRequest},
		{"sign: deep nesting", "/api/sign", `{"job_ids":` + strings.Repeat("[", 10000) + `,"pin":"123456"}`, CodeBadRequest},
		{"sign: no jobs", "/api/sign", `{"job_ids":[],"pin":"123456"}`, CodeBadRequest},
		{"sign: no job_ids", "/api/sign", `{"pin":"123456"}`, CodeBadRequest},
		{"sign: empty id", "/api/sign", `{"job_ids":[""],"pin":"123456"}`, CodeBadRequest},
		{"sign: id with a slash", "/api/sign", `{"job_ids":["../j1"],"pin":"123456"}`, CodeBadRequest},
		{"sign: id too long", "/api/sign", `{"job_ids":["` + strings.Repeat("a", maxJobIDLen+1) + `"],"pin":"123456"}`, CodeBadRequest},
		{"sign: id not UTF-8", "/api/sign", "{\"job_ids\":[\"j\xff\"],\"pin\":\"123456\"}", CodeBadRequest},
		{"sign: id repeated", "/api/sign", `{"job_ids":["j1","j1"],"pin":"123456"}`, CodeBadRequest},
		{"sign: too many ids", "/api/sign", `{"job_ids":[` + ids(maxJobIDs+1) + `],"pin":"123456"}`, CodeBadRequest},
		{"sign: too large", "/api/sign", `{"job_ids":["j1"],"pin":"123456"}` + strings.Repeat(" ", maxSignBody), CodeBadRequest},
		{"sign: confirm a number", "/api/sign", `{"job_ids":["j1"],"pin":"123456","confirm_last_attempt":1}`, CodeBadRequest},
		{"sign: confirm a huge number", "/api/sign", `{"job_ids":["j1"],"pin":"123456","confirm_last_attempt":1e999999}`, CodeBadRequest},
		{"sign: confirm a string", "/api/sign", `{"job_ids":["j1"],"pin":"123456","confirm_last_attempt":"true"}`, CodeBadRequest},
		{"sign: confirm null", "/api/sign", `{"job_ids":["j1"],"pin":"123456","confirm_last_attempt":null}`, CodeBadRequest},
		{"sign: numeric pin", "/api/sign", `{"job_ids":["j1"],"pin":123456}`, CodeBadRequest},
		{"sign: huge numeric pin", "/api/sign", `{"job_ids":["j1"],"pin":123456789012345678901234567890}`, CodeBadRequest},
		{"sign: null pin", "/api/sign", `{"job_ids":["j1"],"pin":null}`, CodeBadRequest},
		{"sign: no pin", "/api/sign", `{"job_ids":["j1"]}`, CodePINFormat},
		{"sign: short pin", "/api/sign", `{"job_ids":["j1"],"pin":"12345"}`, CodePINFormat},
		{"sign: long pin", "/api/sign", `{"job_ids":["j1"],"pin":"123456789"}`, CodePINFormat},
		{"sign: escaped pin", "/api/sign", `{"job_ids":["j1"],"pin":"12\u00334567"}`, CodePINFormat},
		{"sign: pin with a space", "/api/sign", `{"job_ids":["j1"],"pin":"123 456"}`, CodePINFormat},
		{"sign: pin not ASCII", "/api/sign", `{"job_ids":["j1"],"pin":"12345é"}`, CodePINFormat},
		{"sign: pin not UTF-8", "/api/sign", "{\"job_ids\":[\"j1\"],\"pin\":\"12345\xff\"}", CodePINFormat},
		{"sign: pin with a raw control", "/api/sign", "{\"job_ids\":[\"j1\"],\"pin\":\"12345\x01\"}", CodeBadRequest},
		// reject
		{"reject: empty body", "/api/reject", ``, CodeBadRequest},
		{"reject: not JSON", "/api/reject", `job_id=j1`, CodeBadRequest},
		{"reject: no job_id", "/api/reject", `{"reason":"salah"}`, CodeBadRequest},
		{"reject: empty job_id", "/api/reject", `{"job_id":"","reason":"salah"}`, CodeBadRequest},
		{"reject: job_id a number", "/api/reject", `{"job_id":12,"reason":"salah"}`, CodeBadRequest},
		{"reject: job_id bad", "/api/reject", `{"job_id":"j 1","reason":"salah"}`, CodeBadRequest},
		{"reject: unknown field", "/api/reject", `{"job_id":"j1","reason":"salah","x":true}`, CodeBadRequest},
		{"reject: reason a number", "/api/reject", `{"job_id":"j1","reason":1e400}`, CodeBadRequest},
		{"reject: reason an array", "/api/reject", `{"job_id":"j1","reason":["a"]}`, CodeBadRequest},
		{"reject: reason twice", "/api/reject", `{"job_id":"j1","reason":"a","reason":"b"}`, CodeBadRequest},
		{"reject: raw line break", "/api/reject", "{\"job_id\":\"j1\",\"reason\":\"a\nb\"}", CodeBadRequest},
		{"reject: reason not UTF-8", "/api/reject", "{\"job_id\":\"j1\",\"reason\":\"salah \xff\"}", CodeReasonInvalid},
		{"reject: lone surrogate", "/api/reject", `{"job_id":"j1","reason":"salah \ud800"}`, CodeReasonInvalid},
		{"reject: NUL", "/api/reject", `{"job_id":"j1","reason":"salah\u0000"}`, CodeReasonInvalid},
		{"reject: escape", "/api/reject", `{"job_id":"j1","reason":"\u001b[31msalah"}`, CodeReasonInvalid},
		{"reject: vertical tab", "/api/reject", `{"job_id":"j1","reason":"a\u000bb"}`, CodeReasonInvalid},
		{"reject: form feed", "/api/reject", `{"job_id":"j1","reason":"a\fb"}`, CodeReasonInvalid},
		{"reject: DEL", "/api/reject", `{"job_id":"j1","reason":"a\u007fb"}`, CodeReasonInvalid},
		{"reject: C1 next line", "/api/reject", `{"job_id":"j1","reason":"a\u0085b"}`, CodeReasonInvalid},
		{"reject: right-to-left override", "/api/reject", `{"job_id":"j1","reason":"fdp.\u202eexe"}`, CodeReasonInvalid},
		{"reject: zero width space", "/api/reject", `{"job_id":"j1","reason":"sa\u200blah"}`, CodeReasonInvalid},
		{"reject: soft hyphen", "/api/reject", `{"job_id":"j1","reason":"sa\u00adlah"}`, CodeReasonInvalid},
		{"reject: byte order mark", "/api/reject", `{"job_id":"j1","reason":"\ufeffsalah"}`, CodeReasonInvalid},
		{"reject: line separator", "/api/reject", `{"job_id":"j1","reason":"a\u2028b"}`, CodeReasonInvalid},
		{"reject: paragraph separator", "/api/reject", "{\"job_id\":\"j1\",\"reason\":\"a\u2029b\"}", CodeReasonInvalid},
		{"reject: tag character", "/api/reject", `{"job_id":"j1","reason":"a\udb40\udc41b"}`, CodeReasonInvalid},
		{"reject: unassigned tag block", "/api/reject", "{\"job_id\":\"j1\",\"reason\":\"a\U000E0002b\"}", CodeReasonInvalid},
		{"reject: too long", "/api/reject", `{"job_id":"j1","reason":"` + strings.Repeat("é", DefaultMaxReasonLen+1) + `"}`, CodeReasonTooLong},
		{"reject: too large", "/api/reject", `{"job_id":"j1","reason":"` + strings.Repeat("a", maxBody) + `"}`, CodeBadRequest},
		// dismiss
		{"dismiss: empty body", "/api/dismiss", ``, CodeBadRequest},
		{"dismiss: a member", "/api/dismiss", `{"x":1}`, CodeBadRequest},
		{"dismiss: an array", "/api/dismiss", `[]`, CodeBadRequest},
		{"dismiss: two objects", "/api/dismiss", `{}{}`, CodeBadRequest},
		// language
		{"language: unknown", "/api/language", `{"lang":"fr"}`, CodeBadRequest},
		{"language: empty", "/api/language", `{"lang":""}`, CodeBadRequest},
		{"language: a number", "/api/language", `{"lang":1}`, CodeBadRequest},
		{"language: missing", "/api/language", `{}`, CodeBadRequest},
		{"language: unknown field", "/api/language", `{"lang":"en","x":1}`, CodeBadRequest},
		{"language: twice", "/api/language", `{"lang":"en","lang":"id"}`, CodeBadRequest},
		{"language: not UTF-8", "/api/language", "{\"lang\":\"e\xffn\"}", CodeBadRequest},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := post(t, ts, tc.path, tc.body, hdr)
			code, params := errorCode(t, res)
			if res.StatusCode != http.StatusBadRequest || code != tc.code {
				t.Fatalf("status %d code %q, want 400 %q", res.StatusCode, code, tc.code)
			}
			if ct := res.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("content type %q", ct)
			}
			if code == CodeReasonTooLong && params["n"] != strconv.Itoa(DefaultMaxReasonLen) {
				t.Errorf("params %v", params)
			}
		})
	}
	if n := ctl.calls(); n != 0 {
		t.Fatalf("the controller was called %d times for refused requests", n)
	}
}

// A body without a Content-Length (chunked) is read within the same bound.
func TestChunkedBodies(t *testing.T) {
	_, ctl, ts := newTestServer(t)
	tok := csrfOf(t, ts)
	send := func(body string) *http.Response {
		// A reader of unknown length makes the client send chunks.
		req, _ := http.NewRequest(http.MethodPost, ts.URL+"/api/sign", io.MultiReader(strings.NewReader(body)))
		req.Header.Set("Origin", ts.URL)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Teken-CSRF", tok)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { res.Body.Close() })
		if req.ContentLength != 0 && req.ContentLength != -1 {
			t.Fatalf("request sent with a length")
		}
		return res
	}
	if res := send(`{"job_ids":["j1"],"pin":"123456"}`); res.StatusCode != http.StatusOK {
		t.Fatalf("chunked sign: %d", res.StatusCode)
	}
	res := send(`{"job_ids":["j1"],"pin":"123456"}` + strings.Repeat(" ", maxSignBody))
	if code, _ := errorCode(t, res); res.StatusCode != http.StatusBadRequest || code != CodeBadRequest {
		t.Fatalf("chunked sign over the limit: %d %q", res.StatusCode, code)
	}
	if len(ctl.pins) != 1 {
		t.Fatalf("controller saw %d sign requests, want 1", len(ctl.pins))
	}
}

func TestDocumentURLs(t *testing.T) {
	_, _, ts := newTestServer(t)
	for _, tc := range []struct {
		path string
		want int
	}{
		{"/api/documents/j1/0", http.StatusOK},
		{"/api/documents/j1/-1", http.StatusBadRequest},
		{"/api/documents/j1/+1", http.StatusBadRequest},
		{"/api/documents/j1/01", http.StatusBadRequest},
		{"/api/documents/j1/1e3", http.StatusBadRequest},
		{"/api/documents/j1/abc", http.StatusBadRequest},
		{"/api/documents/j1/99999999999999999999999", http.StatusBadRequest},
		{"/api/documents/j%20x/0", http.StatusBadRequest},
		{"/api/documents/j%FF/0", http.StatusBadRequest},
		{"/api/documents/" + strings.Repeat("a", maxJobIDLen+1) + "/0", http.StatusBadRequest},
		{"/api/documents/j1/7", http.StatusNotFound},     // the controller has no such document
		{"/api/documents/other/0", http.StatusNotFound},  // not the present signer's
		{"/api/documents/j1/65535", http.StatusNotFound}, // a number, just not a document
	} {
		res, err := http.Get(ts.URL + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		code, _ := errorCode(t, res)
		res.Body.Close()
		if res.StatusCode != tc.want || (tc.want == http.StatusBadRequest && code != CodeBadRequest) {
			t.Errorf("%s: %d %q, want %d", tc.path, res.StatusCode, code, tc.want)
		}
	}
}

// A reason on several lines reaches the controller with LF line breaks,
// trimmed; at the limit it is taken, counted in characters.
func TestRejectReasons(t *testing.T) {
	_, ctl, ts := newTestServer(t)
	tok := csrfOf(t, ts)
	hdr := map[string]string{"Origin": ts.URL, "Content-Type": "application/json", "X-Teken-CSRF": tok}
	atLimit := strings.Repeat("文", DefaultMaxReasonLen)
	for _, tc := range []struct{ name, reason, want string }{
		{"one line", `Tanggal salah`, "Tanggal salah"},
		{"LF", `Tanggal salah\nNomor surat salah`, "Tanggal salah\nNomor surat salah"},
		{"CRLF", `Tanggal salah\r\nNomor surat salah\r\n`, "Tanggal salah\nNomor surat salah"},
		{"CR", `satu\rdua\r\rtiga`, "satu\ndua\n\ntiga"},
		{"blank lines kept inside", `satu\n\n\ndua`, "satu\n\n\ndua"},
		{"trimmed", `  \n\t satu \n `, "satu"},
		{"tab", `a\tb`, "a b"},
		{"empty", ``, ""},
		{"only space", ` \r\n\t `, ""},
		{"emoji", `Salah \ud83d\ude00 alamat`, "Salah 😀 alamat"},
		{"escaped slash and quote", `a\/b \"c\"`, `a/b "c"`},
		{"at the limit", atLimit, atLimit},
		{"at the limit once trimmed", `\r\n  ` + atLimit + `  \n`, atLimit},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctl.mu.Lock()
			ctl.rejct = nil
			ctl.mu.Unlock()
			res := post(t, ts, "/api/reject", `{"job_id":"j1","reason":"`+tc.reason+`"}`, hdr)
			if res.StatusCode != http.StatusOK {
				b, _ := io.ReadAll(res.Body)
				t.Fatalf("status %d: %s", res.StatusCode, b)
			}
			if len(ctl.rejct) != 1 || ctl.rejct[0] != "j1:"+tc.want {
				t.Fatalf("controller saw %q, want %q", ctl.rejct, "j1:"+tc.want)
			}
		})
	}
	res := post(t, ts, "/api/reject", `{"job_id":"j1"}`, hdr)
	if res.StatusCode != http.StatusOK || ctl.rejct[len(ctl.rejct)-1] != "j1:" {
		t.Fatalf("reject without a reason: %d %q", res.StatusCode, ctl.rejct)
	}
}

// The controller's own errors keep their statuses: the official's are 409
// with their code, a genuine internal error stays 500.
func TestRejectErrorsFromController(t *testing.T) {
	_, ctl, ts := newTestServer(t)
	tok := csrfOf(t, ts)
	hdr := map[string]string{"Origin": ts.URL, "Content-Type": "application/json", "X-Teken-CSRF": tok}
	ctl.rejectErr = NewUserError(CodeJobGone, errors.New("cancelled"), nil)
	res := post(t, ts, "/api/reject", `{"job_id":"j1","reason":"a\nb"}`, hdr)
	if code, _ := errorCode(t, res); res.StatusCode != http.StatusConflict || code != CodeJobGone {
		t.Fatalf("user error: %d %q", res.StatusCode, code)
	}
	ctl.rejectErr = errors.New("store on fire")
	res = post(t, ts, "/api/reject", `{"job_id":"j1","reason":"a\nb"}`, hdr)
	if code, _ := errorCode(t, res); res.StatusCode != http.StatusInternalServerError || code != CodeInternal {
		t.Fatalf("internal error: %d %q", res.StatusCode, code)
	}
}

// The PIN reaches the controller in a buffer of its own, which is wiped
// once the controller returns, whatever it answered.
func TestSignPINBufferWiped(t *testing.T) {
	_, ctl, ts := newTestServer(t)
	tok := csrfOf(t, ts)
	hdr := map[string]string{"Origin": ts.URL, "Content-Type": "application/json", "X-Teken-CSRF": tok}
	post(t, ts, "/api/sign", `{"pin":"Zq7Kx3Wv","job_ids":["j1","j2"],"confirm_last_attempt":true}`, hdr)
	ctl.err = NewUserError(CodeWrongPIN, nil, map[string]string{"n": "2"})
	post(t, ts, "/api/sign", `{"job_ids":["j1"],"pin":"a1B2c3"}`, hdr)
	if len(ctl.pinBufs) != 2 || ctl.pins[0] != "Zq7Kx3Wv" || ctl.pins[1] != "a1B2c3" {
		t.Fatalf("controller saw %q", ctl.pins)
	}
	if !slices.Equal(ctl.jobs[0], []string{"j1", "j2"}) {
		t.Errorf("jobs %q", ctl.jobs[0])
	}
	for i, b := range ctl.pinBufs {
		if len(b) == 0 || strings.Trim(string(b), "\x00") != "" {
			t.Errorf("PIN buffer %d not wiped after the call: %q", i, b)
		}
	}
}

func TestPageCarriesReasonLimit(t *testing.T) {
	_, _, ts := newTestServer(t)
	res, err := http.Get(ts.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if want := `<meta name="reason-max" content="` + strconv.Itoa(DefaultMaxReasonLen) + `">`; !strings.Contains(string(b), want) {
		t.Fatalf("page lacks %s", want)
	}
}

// A page left open across a tekend restart holds the old process's token.
// Its state changes are refused with err_session_stale (a code the page acts
// on, not a bare 403), and GET /api/session hands it the current token and
// boot id, the boot its views carry, without a token of its own.
func TestStaleTokenAndSession(t *testing.T) {
	s, ctl, ts := newTestServer(t)
	tok := csrfOf(t, ts)
	res := post(t, ts, "/api/sign", `{"job_ids":["j1"],"pin":"123456"}`,
		map[string]string{"Origin": ts.URL, "Content-Type": "application/json", "X-Teken-CSRF": "token-of-an-earlier-tekend"})
	if code, _ := errorCode(t, res); res.StatusCode != http.StatusForbidden || code != CodeSessionStale {
		t.Fatalf("old token: %d %q, want 403 %s", res.StatusCode, code, CodeSessionStale)
	}
	// The other refusals stay bare: a foreign page learns nothing.
	res = post(t, ts, "/api/sign", `{"job_ids":["j1"],"pin":"123456"}`,
		map[string]string{"Origin": "http://evil.example", "Content-Type": "application/json", "X-Teken-CSRF": "x"})
	if code, _ := errorCode(t, res); res.StatusCode != http.StatusForbidden || code != "" {
		t.Fatalf("foreign origin: %d %q", res.StatusCode, code)
	}
	if n := ctl.calls(); n != 0 {
		t.Fatalf("the controller was called %d times", n)
	}

	get := func(hdr map[string]string) (*http.Response, session) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, ts.URL+"/api/session", nil)
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
		defer res.Body.Close()
		var out session
		_ = json.NewDecoder(res.Body).Decode(&out)
		return res, out
	}
	res, got := get(map[string]string{"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "cors", "Sec-Fetch-Dest": "empty"})
	if res.StatusCode != http.StatusOK || got.CSRF != tok || got.Boot == "" || res.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("session: %d %+v (page token %q), cache %q", res.StatusCode, got, tok, res.Header.Get("Cache-Control"))
	}
	var latest View
	s.mu.Lock()
	_ = json.Unmarshal(s.latest, &latest)
	s.mu.Unlock()
	if latest.Boot != got.Boot {
		t.Fatalf("views carry boot %q, the session %q", latest.Boot, got.Boot)
	}
	for _, tc := range []struct {
		name string
		hdr  map[string]string
		want int
	}{
		{"rebound host", map[string]string{"Host": "evil.example:80"}, http.StatusMisdirectedRequest},
		{"foreign origin", map[string]string{"Origin": "http://evil.example"}, http.StatusForbidden},
		{"cross site", map[string]string{"Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
		{"same site, other origin", map[string]string{"Sec-Fetch-Site": "same-site"}, http.StatusForbidden},
		{"navigation", map[string]string{"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "navigate"}, http.StatusForbidden},
		{"no-cors load", map[string]string{"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "no-cors"}, http.StatusForbidden},
	} {
		if res, got := get(tc.hdr); res.StatusCode != tc.want || got.CSRF != "" {
			t.Errorf("%s: %d %+v, want %d and no token", tc.name, res.StatusCode, got, tc.want)
		}
	}

	// Another Server (tekend after a restart) has another boot.
	other, err := New(Options{Addr: ts.Listener.Addr().String(), Controller: ctl})
	if err != nil {
		t.Fatal(err)
	}
	if other.boot == s.boot || other.csrf == s.csrf {
		t.Fatal("two servers share a boot id or a token")
	}
}

// The stream tells the browser to come back soon after it ends, and every
// view on it carries the boot id, whatever the publisher set.
func TestEventsCarryBootAndRetry(t *testing.T) {
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
	if !sc.Scan() || sc.Text() != "retry: 1000" {
		t.Fatalf("first line %q, want the retry delay", sc.Text())
	}
	s.Publish(View{State: StateIdle, Boot: "forged", Parts: []Message{{Code: CodePCSC}}, Unavailable: true})
	var views []View
	for len(views) < 2 && sc.Scan() {
		if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			var v View
			if err := json.Unmarshal([]byte(d), &v); err != nil {
				t.Fatal(err)
			}
			views = append(views, v)
		}
	}
	if len(views) != 2 {
		t.Fatal("stream ended")
	}
	for _, v := range views {
		if v.Boot != s.boot {
			t.Errorf("view boot %q, want %q", v.Boot, s.boot)
		}
	}
	if v := views[1]; !v.Unavailable || len(v.Parts) != 1 || v.Parts[0].Code != CodePCSC {
		t.Errorf("parts not carried: %+v", v)
	}
}
