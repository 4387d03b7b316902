package kiosk

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestRenderable(t *testing.T) {
	for _, c := range []struct {
		mediaType string
		want      bool
	}{
		{"application/pdf", true},
		{"image/png", true},
		{"image/jpeg", true},
		{"image/gif", true},
		{"image/webp", true},
		{"text/plain", true},
		{"application/vnd.openxmlformats-officedocument.wordprocessingml.document", false},
		{"application/msword", false},
		{"application/octet-stream", false},
		{"text/html", false},
		{"image/svg+xml", false}, // scriptable
		{"text/plain; charset=utf-8", false},
		{"Application/PDF", false},
		{"", false},
	} {
		if got := Renderable(c.mediaType); got != c.want {
			t.Errorf("Renderable(%q) = %v, want %v", c.mediaType, got, c.want)
		}
	}
	types := RenderableTypes()
	types[0] = "text/html"
	if Renderable("text/html") {
		t.Error("RenderableTypes hands out the set itself")
	}
}

func TestNewCodesAreListed(t *testing.T) {
	for _, c := range []string{CodeNotViewed, CodeUnrenderable} {
		if !slices.Contains(ErrorCodes, c) {
			t.Errorf("%s not in ErrorCodes", c)
		}
	}
	if CodeNotViewed != "err_not_viewed" || CodeUnrenderable != "err_unrenderable" {
		t.Errorf("codes %q %q", CodeNotViewed, CodeUnrenderable)
	}
}

// The page reads these names; they are its contract with tekend.
func TestViewJSONNames(t *testing.T) {
	v := View{State: StateToken, Jobs: []Job{{
		ID: "j1", Title: "Undangan", Fields: []Field{{Label: "Sifat", Value: "Segera"}},
		Documents: []Document{{Index: 0, MediaType: "application/pdf", Available: true, Renderable: true, Viewed: true}},
	}}}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Jobs []map[string]json.RawMessage `json:"jobs"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	job := got.Jobs[0]
	if string(job["fields"]) != `[{"label":"Sifat","value":"Segera"}]` {
		t.Errorf("fields = %s", job["fields"])
	}
	var docs []map[string]json.RawMessage
	if err := json.Unmarshal(job["documents"], &docs); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"available", "renderable", "viewed"} {
		if string(docs[0][k]) != "true" {
			t.Errorf("document %s = %s, want true", k, docs[0][k])
		}
	}
	if _, ok := job["expires_at"]; !ok {
		t.Error("no expires_at")
	}
}

// A job without fields reaches the page with an empty list, never null.
func TestPublishedFieldsNeverNull(t *testing.T) {
	s, _, ts := newTestServer(t)
	s.Publish(View{State: StateToken, Lang: "id", Jobs: []Job{{ID: "j1", Title: "Undangan"}}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, ts.URL+"/api/events", nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	buf := make([]byte, 4096)
	var seen strings.Builder
	for !strings.Contains(seen.String(), `"jobs"`) {
		n, err := res.Body.Read(buf)
		seen.Write(buf[:n])
		if err != nil {
			t.Fatalf("stream: %v after %q", err, seen.String())
		}
	}
	for !strings.Contains(seen.String(), "\n\n") {
		n, err := res.Body.Read(buf)
		seen.Write(buf[:n])
		if err != nil {
			t.Fatalf("stream: %v after %q", err, seen.String())
		}
	}
	if !strings.Contains(seen.String(), `"fields":[]`) {
		t.Fatalf("view %s, want an empty fields list", seen.String())
	}
}

// docs is a controller whose documents are a map, counting what it served.
type docs struct {
	recorder
	mu     sync.Mutex
	byType map[string]string // job id → media type
	served []string
}

func (c *docs) Document(_ context.Context, id string, _ int) (string, []byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	mt, ok := c.byType[id]
	if !ok {
		return "", nil, errors.New("no such document")
	}
	c.served = append(c.served, id)
	return mt, []byte("isi"), nil
}

func (c *docs) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.served)
}

func newDocServer(t *testing.T, byType map[string]string) (*docs, *httptest.Server) {
	t.Helper()
	ctl := &docs{byType: byType}
	ts := httptest.NewServer(nil)
	t.Cleanup(ts.Close)
	s, err := New(Options{Addr: ts.Listener.Addr().String(), Controller: ctl})
	if err != nil {
		t.Fatal(err)
	}
	ts.Config.Handler = s
	return ctl, ts
}

// Every type the page shows is served as itself; anything else only as a
// sandboxed download.
func TestDocumentsServedAsThePageShowsThem(t *testing.T) {
	byType := map[string]string{"docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document", "svg": "image/svg+xml"}
	for i, mt := range RenderableTypes() {
		byType["r"+string(rune('a'+i))] = mt
	}
	_, ts := newDocServer(t, byType)
	for id, mt := range byType {
		res, err := http.Get(ts.URL + "/api/documents/" + id + "/0")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		ct, disp, csp := res.Header.Get("Content-Type"), res.Header.Get("Content-Disposition"), res.Header.Get("Content-Security-Policy")
		switch {
		case res.StatusCode != http.StatusOK:
			t.Errorf("%s: status %d", mt, res.StatusCode)
		case Renderable(mt) && (ct != mt || disp != ""):
			t.Errorf("%s served as %q, %q", mt, ct, disp)
		case !Renderable(mt) && (ct != "application/octet-stream" || disp != "attachment" || !strings.Contains(csp, "sandbox")):
			t.Errorf("%s served as %q, %q, CSP %q", mt, ct, disp, csp)
		}
	}
}

// A document served counts as seen by the official, so only a GET the page
// may have made reaches the controller: not a HEAD, not a fetch a browser
// marks as another site's or another origin's.
func TestDocumentReadsThatCountAsSeen(t *testing.T) {
	ctl, ts := newDocServer(t, map[string]string{"j1": "application/pdf"})
	for _, c := range []struct {
		name   string
		method string
		hdr    map[string]string
		want   int
	}{
		{"the page's fetch", http.MethodGet, map[string]string{"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "cors"}, http.StatusOK},
		{"the page's frame", http.MethodGet, map[string]string{"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "iframe"}, http.StatusOK},
		{"the page's image", http.MethodGet, map[string]string{"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Dest": "image"}, http.StatusOK},
		{"typed in the address bar", http.MethodGet, map[string]string{"Sec-Fetch-Site": "none"}, http.StatusOK},
		{"no fetch metadata", http.MethodGet, nil, http.StatusOK},
		{"the page's own origin", http.MethodGet, map[string]string{"Origin": ts.URL}, http.StatusOK},
		{"HEAD", http.MethodHead, nil, http.StatusMethodNotAllowed},
		{"another site's image", http.MethodGet, map[string]string{"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors"}, http.StatusForbidden},
		{"a sibling site's fetch", http.MethodGet, map[string]string{"Sec-Fetch-Site": "same-site"}, http.StatusForbidden},
		{"another origin", http.MethodGet, map[string]string{"Origin": "http://evil.example"}, http.StatusForbidden},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := ctl.count()
			req, _ := http.NewRequest(c.method, ts.URL+"/api/documents/j1/0", nil)
			for k, v := range c.hdr {
				req.Header.Set(k, v)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != c.want {
				t.Fatalf("status %d, want %d: %s", res.StatusCode, c.want, body)
			}
			served := ctl.count() - before
			if want := map[bool]int{true: 1, false: 0}[c.want == http.StatusOK]; served != want {
				t.Fatalf("controller served %d documents, want %d", served, want)
			}
		})
	}
}
