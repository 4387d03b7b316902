package pades

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"time"

	"github.com/digitorus/timestamp"
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// TSAOptions name an RFC 3161 timestamp authority.
type TSAOptions struct {
	// URL is where time-stamp queries are POSTed (RFC 3161 §3.4).
	URL string
	// Timeout bounds the whole exchange; zero means 10 seconds.
	Timeout time.Duration
	// Client is the HTTP client; nil means a plain client.
	Client *http.Client
}

// maxTSAResponse bounds the body read from the authority.
const maxTSAResponse = 1 << 20

// ErrTimestamp matches, through errors.Is, every reason a timestamp could
// not be added: the authority was unreachable, refused, or answered with
// something that does not stamp this signature.
var ErrTimestamp = errors.New("pades: no timestamp")

// fetchTimestamp asks the authority for a token over the signature value
// (the signature-time-stamp of RFC 5126 §5.11.4) and returns the token's
// DER ContentInfo.
func fetchTimestamp(ctx context.Context, o *TSAOptions, h crypto.Hash, sig []byte) ([]byte, error) {
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	nonce, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		return nil, fmt.Errorf("%w: nonce: %w", ErrTimestamp, err)
	}
	req, err := timestamp.CreateRequest(bytes.NewReader(sig), &timestamp.RequestOptions{Hash: h, Certificates: true, Nonce: nonce})
	if err != nil {
		return nil, fmt.Errorf("%w: encode request: %w", ErrTimestamp, err)
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, o.URL, bytes.NewReader(req))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTimestamp, err)
	}
	hr.Header.Set("Content-Type", "application/timestamp-query")
	client := o.Client
	if client == nil {
		client = &http.Client{}
	}
	resp, err := client.Do(hr)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTimestamp, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: authority answered %s", ErrTimestamp, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxTSAResponse+1))
	if err != nil {
		return nil, fmt.Errorf("%w: read response: %w", ErrTimestamp, err)
	}
	if len(body) > maxTSAResponse {
		return nil, fmt.Errorf("%w: response larger than %d bytes", ErrTimestamp, maxTSAResponse)
	}
	return checkTimestamp(body, h, sig, nonce)
}

// checkTimestamp parses a TimeStampResp and makes sure its token stamps
// sig and answers our nonce; the library checks the token's own CMS
// signature.
func checkTimestamp(body []byte, h crypto.Hash, sig []byte, nonce *big.Int) ([]byte, error) {
	ts, err := parseResponse(body)
	if err != nil {
		return nil, fmt.Errorf("%w: parse response: %w", ErrTimestamp, err)
	}
	d := h.New()
	d.Write(sig)
	if ts.HashAlgorithm != h || !bytes.Equal(ts.HashedMessage, d.Sum(nil)) {
		return nil, fmt.Errorf("%w: token does not stamp this signature", ErrTimestamp)
	}
	if nonce != nil && (ts.Nonce == nil || ts.Nonce.Cmp(nonce) != 0) {
		return nil, fmt.Errorf("%w: token nonce does not match the request", ErrTimestamp)
	}
	if len(ts.RawToken) == 0 {
		return nil, fmt.Errorf("%w: empty token", ErrTimestamp)
	}
	return ts.RawToken, nil
}

// parseResponse hands body to the library only once it is known to be
// strict DER all the way down: the BER reader in github.com/digitorus/pkcs7
// (as of v0.0.0-20230713084857) indexes past the end of truncated tags and
// lengths (mozilla-services/pkcs7#94, fixed upstream only in releases
// needing Go 1.27), and the authority's answer is untrusted input. The
// recover is a backstop for the same bug class (mozilla-services/pkcs7#67).
func parseResponse(body []byte) (ts *timestamp.Timestamp, err error) {
	if !strictDER(body, 0) {
		return nil, errors.New("response is not DER")
	}
	defer func() {
		if r := recover(); r != nil {
			ts, err = nil, fmt.Errorf("response rejected by the parser: %v", r)
		}
	}()
	return timestamp.ParseResponse(body)
}

// strictDER reports whether b is exactly one DER element whose
// constructed parts, recursively, are well-formed too.
func strictDER(b []byte, depth int) bool {
	if depth > maxDepth {
		return false
	}
	s := cryptobyte.String(b)
	var content cryptobyte.String
	var tag cbasn1.Tag
	if !s.ReadAnyASN1(&content, &tag) || !s.Empty() {
		return false
	}
	if tag&0x20 == 0 { // primitive
		return true
	}
	for !content.Empty() {
		var elem cryptobyte.String
		if !content.ReadAnyASN1Element(&elem, &tag) || !strictDER(elem, depth+1) {
			return false
		}
	}
	return true
}
