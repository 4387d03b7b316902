package tsa

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/digitorus/timestamp"
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/tekenid/teken/signature/cms"
)

// maxDERDepth bounds the nesting strictDER follows; a TimeStampResp with
// its certificates nests about a dozen deep.
const maxDERDepth = 32

// maxStatusText bounds how much of an authority's status text an error
// quotes.
const maxStatusText = 200

// verifier holds what an answer is checked against besides the query.
type verifier struct {
	roots, intermediates *x509.CertPool
	maxSkew              time.Duration
	now                  time.Time // the local time when the answer arrived
}

// check reads an authority's TimeStampResp and returns its token once it
// answers q: status granted, the token's CMS signature and ESS
// signing-certificate (cms.VerifyTimestampToken), imprint, nonce, policy,
// the authority's certificate and chain, the skew. skew is set once the
// token is known to answer q, so that a refusal for policy, chain or skew
// still reports the authority's clock.
func (v verifier) check(body []byte, q *query) (*Token, time.Duration, error) {
	ts, err := parseResponse(body)
	if err != nil {
		return nil, 0, err
	}
	tk, err := cms.VerifyTimestampToken(ts.RawToken, cms.VerifyOptions{})
	if err != nil {
		return nil, 0, fmt.Errorf("token: %w", err)
	}
	// The nonce is read from the library's parse, the rest from the one
	// whose signature check passed: both read the same TSTInfo, or the
	// token is not what it seems.
	if !tk.Time.Equal(ts.Time) || !bytes.Equal(tk.HashedMessage, ts.HashedMessage) || !tk.Policy.Equal(ts.Policy) {
		return nil, 0, errors.New("token: TSTInfo reads two ways")
	}
	if tk.Hash != q.hash || !bytes.Equal(tk.HashedMessage, q.digest) {
		return nil, 0, errors.New("token stamps another message imprint than asked for")
	}
	if ts.Nonce == nil || ts.Nonce.Cmp(q.nonce) != 0 {
		// RFC 3161 §2.4.2: the nonce must be the query's when present.
		return nil, 0, errors.New("token nonce does not match the query")
	}
	skew := tk.Time.Sub(v.now)
	if q.policy != nil && !tk.Policy.Equal(q.policy) {
		return nil, skew, fmt.Errorf("token policy %v, asked for %v", tk.Policy, q.policy)
	}
	// RFC 3161 §2.3, whether or not the chain is checked: x509 would take
	// a certificate without extended key usages as good for any.
	if !slices.Contains(tk.Signer.ExtKeyUsage, x509.ExtKeyUsageTimeStamping) {
		return nil, skew, errors.New("authority certificate does not name the timeStamping extended key usage (RFC 3161 §2.3)")
	}
	chain := []*x509.Certificate{tk.Signer}
	if v.roots != nil {
		chain, err = tk.VerifyChain(cms.VerifyOptions{Roots: v.roots, Intermediates: v.intermediates, CurrentTime: tk.Time})
		if err != nil {
			return nil, skew, fmt.Errorf("authority certificate at genTime %s: %w", tk.Time.Format(time.RFC3339), err)
		}
	}
	if v.maxSkew > 0 && (skew > v.maxSkew || skew < -v.maxSkew) {
		return nil, skew, fmt.Errorf("genTime %s is %v from the local clock, more than the %v allowed",
			tk.Time.Format(time.RFC3339), skew.Round(time.Millisecond), v.maxSkew)
	}
	return &Token{DER: bytes.Clone(ts.RawToken), GenTime: tk.Time, Signer: tk.Signer, Chain: chain}, skew, nil
}

// parseResponse hands body to the library only once it is known to be
// strict DER all the way down: the BER reader in github.com/digitorus/pkcs7
// (as of v0.0.0-20230713084857) indexes past the end of truncated tags and
// lengths (mozilla-services/pkcs7#94, fixed upstream only in releases
// needing Go 1.27), and the authority's answer is untrusted input. The
// recover is a backstop for the same bug class (mozilla-services/pkcs7#67).
// A status other than granted is an error quoting the authority's text.
func parseResponse(body []byte) (ts *timestamp.Timestamp, err error) {
	if !strictDER(body, 0) {
		return nil, errors.New("answer is not a DER TimeStampResp")
	}
	defer func() {
		if r := recover(); r != nil {
			ts, err = nil, fmt.Errorf("answer refused by the parser: %v", r)
		}
	}()
	ts, err = timestamp.ParseResponse(body)
	if err != nil {
		return nil, fmt.Errorf("answer: %s", clip(err.Error()))
	}
	if len(ts.RawToken) == 0 {
		return nil, errors.New("answer: empty token")
	}
	return ts, nil
}

// strictDER reports whether b is exactly one DER element whose
// constructed parts, recursively, are well-formed too.
func strictDER(b []byte, depth int) bool {
	if depth > maxDERDepth {
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

// clip shortens text from an authority for an error message; %q is left
// to whoever prints it, since slog quotes already.
func clip(s string) string {
	if len(s) <= maxStatusText {
		return s
	}
	cut := maxStatusText
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
