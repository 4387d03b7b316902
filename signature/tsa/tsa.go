package tsa

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/digitorus/timestamp"
)

// defaultTimeout bounds one authority's exchange when Config.Timeout is
// zero.
const defaultTimeout = 10 * time.Second

// maxResponse bounds the body read from an authority. A token with its
// authority's chain is a few kilobytes; a megabyte leaves room for long
// chains and refuses a server streaming without end.
const maxResponse = 1 << 20

// Client asks the authorities of a Config for tokens. It is safe for
// concurrent use.
type Client struct {
	authorities []authority
	cfg         Config
	timeout     time.Duration
	now         func() time.Time
}

// authority is a checked Authority with its own HTTP client, so that each
// one's TLS client certificate and server roots stay its own.
type authority struct {
	url      string // as configured; never carries credentials (New refuses them)
	username string
	password string
	http     *http.Client
}

// New checks cfg and builds a Client. Its errors are configuration
// mistakes (permanent) and do not match ErrTimestamp: no authority, a URL
// that is not http or https, credentials in a URL, a client certificate
// for a plain http authority, a negative Timeout or MaxSkew.
func New(cfg Config) (*Client, error) {
	if len(cfg.Authorities) == 0 {
		return nil, errors.New("tsa: no timestamp authority configured")
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("tsa: timeout %v is negative", cfg.Timeout)
	}
	if cfg.MaxSkew < 0 {
		return nil, fmt.Errorf("tsa: maximum skew %v is negative", cfg.MaxSkew)
	}
	// The caller's slice may change after New.
	cfg.Policy = slices.Clone(cfg.Policy)
	c := &Client{cfg: cfg, timeout: cfg.Timeout, now: cfg.Now}
	if c.timeout == 0 {
		c.timeout = defaultTimeout
	}
	if c.now == nil {
		c.now = time.Now
	}
	for i, a := range cfg.Authorities {
		auth, err := newAuthority(a)
		if err != nil {
			return nil, fmt.Errorf("tsa: authority %d: %w", i+1, err)
		}
		c.authorities = append(c.authorities, auth)
	}
	c.cfg.Authorities = nil // each one's copy is in c.authorities
	return c, nil
}

func newAuthority(a Authority) (authority, error) {
	u, err := url.Parse(a.URL)
	if err != nil {
		// url.Error quotes the URL, which may hold a password.
		return authority{}, errors.New("URL does not parse")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return authority{}, fmt.Errorf("URL %s: scheme must be http or https", u.Redacted())
	}
	if u.Host == "" {
		return authority{}, fmt.Errorf("URL %s: no host", u.Redacted())
	}
	if u.User != nil {
		// The URL is named in errors and logs; a password must not be.
		return authority{}, fmt.Errorf("URL %s: credentials belong in Username and Password, not the URL", u.Redacted())
	}
	if a.Password != "" && a.Username == "" {
		return authority{}, fmt.Errorf("%s: password without a username", a.URL)
	}
	if u.Scheme == "http" && (a.ClientCert != nil || a.RootCAs != nil) {
		return authority{}, fmt.Errorf("%s: a TLS client certificate or server roots need an https URL", a.URL)
	}
	tlsConfig := &tls.Config{RootCAs: a.RootCAs, MinVersion: tls.VersionTLS12}
	if cert := a.ClientCert; cert != nil {
		// Offered whatever CAs the server lists, as curl does: a server
		// that sends no or other names may still accept it, and when it
		// does not the handshake says so.
		tlsConfig.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return cert, nil
		}
	}
	transport := &http.Transport{
		Proxy:                  http.ProxyFromEnvironment,
		DialContext:            (&net.Dialer{KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:        tlsConfig,
		ForceAttemptHTTP2:      true,
		MaxResponseHeaderBytes: 64 << 10,
		// One query per signature, minutes apart: an idle connection
		// would save nothing and leave goroutines behind that no one
		// stops.
		DisableKeepAlives: true,
	}
	return authority{
		url:      a.URL,
		username: a.Username,
		password: a.Password,
		http: &http.Client{
			Transport: transport,
			// A redirect would carry the query, and maybe the
			// Authorization header, somewhere the configuration did
			// not name; the configuration should name the final URL.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}, nil
}

// Stamp asks for a token whose message imprint is h(data) (with a nonce,
// certReq true and Config.Policy), checks the answer (status granted,
// imprint, nonce, policy, the token's CMS signature and
// ESSCertID/ESSCertIDv2 per RFC 5816 via cms.VerifyTimestampToken, the
// authority's certificate naming timeStamping and, with Config.Roots, its
// chain at genTime, the skew) and returns the token. The authorities are
// tried in order, each within Config.Timeout, until one gives a good
// token; a failure matches ErrTimestamp and names every authority's
// reason. When ctx ends, no further authority is tried.
func (c *Client) Stamp(ctx context.Context, h crypto.Hash, data []byte) (*Token, error) {
	switch h {
	case crypto.SHA256, crypto.SHA384, crypto.SHA512:
	default:
		// cms.VerifyTimestampToken reads only SHA-2 imprints.
		return nil, fmt.Errorf("%w: hash %v not supported (SHA-256, SHA-384 or SHA-512)", ErrTimestamp, h)
	}
	d := h.New()
	d.Write(data)
	digest := d.Sum(nil)
	failed := &stampError{}
	for i := range c.authorities {
		if err := ctx.Err(); err != nil {
			failed.stopped = err
			failed.untried = len(c.authorities) - i
			break
		}
		a := &c.authorities[i]
		tok, latency, skew, err := c.attempt(ctx, a, h, digest)
		if c.cfg.Observer != nil {
			c.cfg.Observer.ObserveTSA(a.url, latency, skew, err)
		}
		if err == nil {
			return tok, nil
		}
		failed.attempts = append(failed.attempts, attemptError{url: a.url, err: err})
	}
	return nil, failed
}

// attempt is one exchange with one authority: the query, the answer and
// its checks. latency is the HTTP exchange's; skew is set once a token
// answering the query was read.
func (c *Client) attempt(ctx context.Context, a *authority, h crypto.Hash, digest []byte) (tok *Token, latency, skew time.Duration, err error) {
	ctx, cancel := context.WithTimeoutCause(ctx, c.timeout, errAttemptTimeout)
	defer cancel()
	q, err := newQuery(h, digest, c.cfg.Policy)
	if err != nil {
		return nil, 0, 0, err
	}
	start := time.Now()
	body, err := a.post(ctx, q.der)
	latency = time.Since(start)
	if err != nil {
		if context.Cause(ctx) == errAttemptTimeout {
			// The error is the cause itself (net/http reports it), which
			// says less than this.
			return nil, latency, 0, fmt.Errorf("no answer within %v: %w", c.timeout, context.DeadlineExceeded)
		}
		return nil, latency, 0, err
	}
	v := verifier{roots: c.cfg.Roots, intermediates: c.cfg.Intermediates, maxSkew: c.cfg.MaxSkew, now: c.now()}
	tok, skew, err = v.check(body, q)
	if err != nil {
		return nil, latency, skew, err
	}
	tok.URL = a.url
	return tok, latency, skew, nil
}

// errAttemptTimeout tells an attempt's own deadline from the caller's.
var errAttemptTimeout = errors.New("tsa: attempt timed out")

// query is what was asked of an authority, to check its answer against.
type query struct {
	hash   crypto.Hash
	digest []byte
	nonce  *big.Int
	policy asn1.ObjectIdentifier // nil for none
	der    []byte
}

// newQuery makes a TimeStampReq (RFC 3161 §2.4.1) with a fresh 64-bit
// nonce, so that an answer to another query, replayed, is refused.
func newQuery(h crypto.Hash, digest []byte, policy asn1.ObjectIdentifier) (*query, error) {
	nonce, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		return nil, fmt.Errorf("nonce: %w", err)
	}
	req := timestamp.Request{HashAlgorithm: h, HashedMessage: digest, Certificates: true, TSAPolicyOID: policy, Nonce: nonce}
	der, err := req.Marshal()
	if err != nil {
		return nil, fmt.Errorf("encode query: %w", err)
	}
	return &query{hash: h, digest: digest, nonce: nonce, policy: policy, der: der}, nil
}

// post sends a query (RFC 3161 §3.4) and returns the answer's body.
func (a *authority) post(ctx context.Context, der []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.url, bytes.NewReader(der))
	if err != nil {
		return nil, fmt.Errorf("request: %w", err)
	}
	req.Header.Set("Content-Type", "application/timestamp-query")
	req.Header.Set("Accept", "application/timestamp-reply")
	if a.username != "" {
		req.SetBasicAuth(a.username, a.password)
	}
	resp, err := a.http.Do(req)
	if err != nil {
		// The url.Error repeats the URL the caller names anyway.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		// The body is not quoted: it is the server's text, maybe long,
		// maybe echoing the request.
		return nil, fmt.Errorf("authority answered %s", resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	if err != nil {
		return nil, fmt.Errorf("read answer: %w", err)
	}
	if len(body) > maxResponse {
		return nil, fmt.Errorf("answer larger than %d bytes", maxResponse)
	}
	return body, nil
}

// stampError is Stamp's failure: every authority's reason, in order.
type stampError struct {
	attempts []attemptError
	stopped  error // ctx's error when it ended before untried authorities
	untried  int
}

type attemptError struct {
	url string
	err error
}

func (e *stampError) Error() string {
	var b strings.Builder
	b.WriteString(ErrTimestamp.Error())
	for i, a := range e.attempts {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s: %v", a.url, a.err)
	}
	if e.stopped != nil {
		if len(e.attempts) == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%d not tried: %v", e.untried, e.stopped)
	}
	return b.String()
}

// Unwrap lets errors.Is find ErrTimestamp and what each attempt wraps
// (context.DeadlineExceeded, a TLS or network error, cms.ErrInvalid).
func (e *stampError) Unwrap() []error {
	errs := []error{ErrTimestamp}
	for _, a := range e.attempts {
		errs = append(errs, a.err)
	}
	if e.stopped != nil {
		errs = append(errs, e.stopped)
	}
	return errs
}
