package revocation

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
)

const (
	maxOCSPBytes = 64 << 10 // a response for one certificate is a few KiB
	maxCRLBytes  = 16 << 20 // the largest public CRLs are some MiB
	maxRedirects = 3
)

// httpURL reports why a URL from a certificate is not fetched, or "" when
// it is: only plain http, as RFC 5280 §4.2.1.13 and RFC 6960 appendix A
// expect, so that no https trust loop or LDAP client is needed.
func httpURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "unparsable URL"
	}
	if u.Scheme != "http" || u.Host == "" {
		return "not an http:// URL, skipped"
	}
	return ""
}

// client is the configured client with redirects limited to http:// URLs.
func (c *Checker) client() *http.Client {
	cl := *c.cfg.Client
	prev := cl.CheckRedirect
	cl.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if len(via) >= maxRedirects {
			return errors.New("too many redirects")
		}
		if why := httpURL(req.URL.String()); why != "" {
			return fmt.Errorf("redirect to %s: %s", req.URL.Redacted(), why)
		}
		if prev != nil {
			return prev(req, via)
		}
		return nil
	}
	return &cl
}

// fetch sends one request within the configured timeout and returns the
// body of a 200 answer, refused when longer than limit.
func (c *Checker) fetch(ctx context.Context, method, target, contentType string, body []byte, limit int64) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		return nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.client().Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("http status %s", resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read answer: %w", err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("answer longer than %d bytes", limit)
	}
	return b, nil
}
