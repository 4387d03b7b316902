package daemon

import (
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metricsHandler serves IT's endpoints: /metrics, /healthz (the process
// answers) and /readyz (the parts a terminal needs, the failing one named),
// to requests that name an allowed host.
func (d *Daemon) metricsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(d.metrics.reg, promhttp.HandlerOpts{Registry: d.metrics.reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		// Someone opening the port in a browser finds where to go, not a 404.
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, metricsIndex)
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		problems := d.readiness(r.Context())
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if len(problems) > 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, strings.Join(problems, "\n"))
			return
		}
		fmt.Fprintln(w, "ready")
	})
	return newHostGuard(d.metricsLn.Addr().String(), d.cfg.Metrics.AllowedHosts, mux)
}

// metricsIndex is the page at /: the endpoints, for a person, and where
// they are documented.
const metricsIndex = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>tekend</title></head><body>
<h1>tekend</h1>
<ul>
<li><a href="metrics">/metrics</a> — Prometheus metrics</li>
<li><a href="healthz">/healthz</a> — the process answers</li>
<li><a href="readyz">/readyz</a> — ready to sign, or the part that is not</li>
</ul>
<p>Documented in MONITORING.md (/usr/share/doc/teken/MONITORING.md on a terminal).</p>
</body></html>
`

// hostGuard refuses a request whose Host names a host it was not told of.
// A web page the terminal's browser opens could otherwise read the token
// and queue metrics by DNS rebinding: its script talks to a name that now
// resolves to the terminal, but the request still carries that name. The
// port is not compared: the name is what rebinding cannot fake.
type hostGuard struct {
	allowed map[string]bool
	next    http.Handler
}

func newHostGuard(listen string, extra []string, next http.Handler) *hostGuard {
	g := &hostGuard{allowed: map[string]bool{"localhost": true, "127.0.0.1": true, "::1": true}, next: next}
	if host, _, err := net.SplitHostPort(listen); err == nil && host != "" {
		if ip := net.ParseIP(host); ip == nil || !ip.IsUnspecified() {
			g.allowed[normalHost(host)] = true
		}
	}
	for _, h := range extra {
		g.allowed[normalHost(h)] = true
	}
	return g
}

func normalHost(h string) string {
	return strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(h, "["), "]"))
}

func (g *hostGuard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	host, _, err := net.SplitHostPort(r.Host)
	if err != nil {
		host = r.Host // no port
	}
	if !g.allowed[normalHost(host)] {
		http.Error(w, "unknown host", http.StatusMisdirectedRequest)
		return
	}
	g.next.ServeHTTP(w, r)
}
