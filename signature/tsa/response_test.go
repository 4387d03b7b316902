package tsa

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/pem"
	"flag"
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/digitorus/timestamp"

	"github.com/tekenid/teken/internal/testenv"
	"github.com/tekenid/teken/signature/cms"
)

var updateSeeds = flag.Bool("update-seeds", false, "rewrite testdata/fuzz/FuzzParseResponse from openssl")

// What is not a good answer is refused, whatever its size or shape.
func TestBadAnswers(t *testing.T) {
	ca := testenv.NewCA(t, "Teken Test TSA CA")
	a := authorityOf(t, ca, nil)
	answer := func(b []byte) string {
		return serve(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(b) }))
	}
	redirect := serve(t, http.RedirectHandler(a.URL, http.StatusTemporaryRedirect))
	for _, tc := range []struct {
		name, url, want string
	}{
		{"garbage", answer([]byte("not a timestamp response")), "not a DER TimeStampResp"},
		{"too large", answer(make([]byte, maxResponse+1)), "larger than 1048576 bytes"},
		{"rejection", answer([]byte{0x30, 0x05, 0x30, 0x03, 0x02, 0x01, 0x02}), "rejected"},
		{"granted without a token", answer([]byte{0x30, 0x05, 0x30, 0x03, 0x02, 0x01, 0x00}), "answer"},
		{"redirect", redirect, "307 Temporary Redirect"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := newClient(t, Config{Authorities: []Authority{{URL: tc.url}}}).Stamp(context.Background(), crypto.SHA256, []byte("data"))
			wantRefused(t, tok, err, tc.want, tc.url)
		})
	}
}

// Every truncation and every one-byte change of a real answer is refused
// (or, where the change is outside what is checked, gives the same token).
func TestDamagedAnswers(t *testing.T) {
	ca := testenv.NewCA(t, "Teken Test TSA CA")
	a := authorityOf(t, ca, nil)
	q, body := realAnswer(t, a.URL, crypto.SHA256, []byte("data"))
	v := verifier{roots: ca.Pool(), now: time.Now()}
	good, _, err := v.check(body, q)
	if err != nil {
		t.Fatal(err)
	}
	for i := range body {
		if tok, _, err := v.check(body[:i], q); err == nil {
			t.Fatalf("%d of %d bytes accepted: %v", i, len(body), tok)
		}
		damaged := bytes.Clone(body)
		damaged[i] ^= 0x41
		if tok, _, err := v.check(damaged, q); err == nil && !bytes.Equal(tok.DER, good.DER) {
			t.Fatalf("byte %d changed, another token accepted", i)
		}
	}
}

// realAnswer asks url for a token over data with a fresh query.
func realAnswer(t testing.TB, u string, h crypto.Hash, data []byte) (*query, []byte) {
	t.Helper()
	d := h.New()
	d.Write(data)
	q, err := newQuery(h, d.Sum(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	c := newClientTB(t, Config{Authorities: []Authority{{URL: u}}})
	body, err := c.authorities[0].post(context.Background(), q.der)
	if err != nil {
		t.Fatal(err)
	}
	return q, body
}

func newClientTB(t testing.TB, cfg Config) *Client {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// fuzzQuery is the query the seed answers in
// testdata/fuzz/FuzzParseResponse answer (written by -update-seeds).
func fuzzQuery() *query {
	d := sha256.Sum256([]byte("teken fuzz"))
	q := &query{hash: crypto.SHA256, digest: d[:], nonce: big.NewInt(0x7e4e)}
	req := timestamp.Request{HashAlgorithm: q.hash, HashedMessage: q.digest, Certificates: true, Nonce: q.nonce}
	q.der, _ = req.Marshal()
	return q
}

// FuzzParseResponse feeds arbitrary bytes as an authority's answer to a
// known query: no panic, and nothing accepted that is not a token
// answering it.
func FuzzParseResponse(f *testing.F) {
	f.Add([]byte{0x30, 0x03, 0x02, 0x01, 0x00})
	f.Add([]byte{0x30, 0x05, 0x30, 0x03, 0x02, 0x01, 0x02})
	q := fuzzQuery()
	v := verifier{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	f.Fuzz(func(t *testing.T, b []byte) {
		tok, _, err := v.check(b, q)
		if err != nil {
			return
		}
		ts, err := cms.VerifyTimestampToken(tok.DER, cms.VerifyOptions{})
		if err != nil || !ts.Stamps([]byte("teken fuzz")) || tok.Signer == nil || len(tok.Chain) != 1 {
			t.Fatalf("accepted a token that does not answer the query: %v", err)
		}
	})
}

// TestWriteFuzzSeeds rewrites the seeds of FuzzParseResponse from a real
// authority: go test -run TestWriteFuzzSeeds -update-seeds.
func TestWriteFuzzSeeds(t *testing.T) {
	if !*updateSeeds {
		t.Skip("-update-seeds not set")
	}
	a := authorityOf(t, testenv.NewCA(t, "Teken Fuzz TSA CA"), nil)
	q := fuzzQuery()
	resp, err := http.Post(a.URL, "application/timestamp-query", bytes.NewReader(q.der))
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := (verifier{now: time.Now()}).check(body, q); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzParseResponse")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{
		"openssl-reply":     body,
		"truncated":         body[:len(body)/2],
		"trailing-byte":     append(bytes.Clone(body), 0),
		"indefinite-length": append([]byte{0x30, 0x80}, append(bytes.Clone(body[2+int(body[1]&0x7f):]), 0, 0)...),
		"pem":               pem.EncodeToMemory(&pem.Block{Type: "TIMESTAMP", Bytes: body}),
	} {
		seed := "go test fuzz v1\n[]byte(" + strconv.Quote(string(b)) + ")\n"
		if err := os.WriteFile(filepath.Join(dir, name), []byte(seed), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
