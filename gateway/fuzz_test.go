package gateway

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// FuzzSubmit feeds the submit decoder and the job it builds any body, as
// JSON or as a multipart form: a clear refusal (4xx) or a job a terminal
// takes, never a panic or a 500.
func FuzzSubmit(f *testing.F) {
	f.Add([]byte(`{"terminal":"kendari-setda-01","signer":{"cert_sha256":"1265630241a3c8df5a89baad68678cf60b2f6fefd0ef30960426900dbc8e8563"},"title":"t","number":"n","sender":"s","documents":[{"id":"surat","content":"JVBERi0xLjQK"}]}`), false)
	f.Add([]byte(`{"group":"setda","signer":{"nip":"198703152010012003"},"title":"t","number":"n","sender":"s","documents":[{"id":"a","content":"eA==","format":"pades","visible":{"page":-1,"rect":[1,2]}}]}`), false)
	f.Add([]byte("--b\r\nContent-Disposition: form-data; name=\"letter\"\r\n\r\n{\"terminal\":\"kendari-setda-01\",\"signer\":{\"nip\":\"198703152010012003\"},\"title\":\"t\",\"number\":\"n\",\"sender\":\"s\",\"documents\":[{\"id\":\"surat\",\"file\":\"surat\"}]}\r\n--b\r\nContent-Disposition: form-data; name=\"surat\"; filename=\"a.pdf\"\r\nContent-Type: application/pdf\r\n\r\n%PDF-1.4\r\n--b--\r\n"), true)
	f.Add([]byte(`{"documents":[{"id":"","content":null}],"expires_at":"0001-01-01T00:00:00Z"}`), false)
	f.Add([]byte("--b\r\nContent-Disposition: form-data; name=\"surat\"\r\n\r\nx\r\n--b\r\nContent-Disposition: form-data; name=\"surat\"\r\n\r\ny\r\n--b--"), true)
	g := &Gateway{cfg: DefaultConfig(), signers: map[string]signer{"198703152010012003": {CertSHA256: "1265630241a3c8df5a89baad68678cf60b2f6fefd0ef30960426900dbc8e8563"}}}
	g.cfg.Groups = map[string][]string{"setda": {"kendari-setda-01"}}
	g.cfg.MaxLetterBytes = 1 << 20
	cl := &client{id: "c", terminals: []string{"kendari-*"}}
	f.Fuzz(func(t *testing.T, body []byte, multipart bool) {
		r := httptest.NewRequest(http.MethodPost, "/v1/letters", bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		if multipart {
			r.Header.Set("Content-Type", "multipart/form-data; boundary=b")
		}
		req, hash, aerr := readSubmit(r, g.cfg.MaxLetterBytes)
		if aerr != nil {
			if aerr.status < 400 || aerr.status > 499 || aerr.text("en") == "" || aerr.text("id") == "" {
				t.Fatalf("refused with %d %q", aerr.status, aerr.code)
			}
			return
		}
		if len(hash) != 64 {
			t.Fatalf("request hash %q", hash)
		}
		job, aerr := g.buildJob(cl, req, time.Now().UTC())
		if aerr != nil {
			if aerr.status < 400 || aerr.status > 499 {
				t.Fatalf("refused with %d %q", aerr.status, aerr.code)
			}
			return
		}
		// What the gateway takes, a terminal takes.
		if err := job.Validate(); err != nil {
			t.Fatalf("built a job a terminal refuses: %v", err)
		}
	})
}
