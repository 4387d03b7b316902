package daemon

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metricsHandler serves IT's endpoints: /metrics, /healthz (the process
// answers) and /readyz (the parts a terminal needs, the failing one named).
func (d *Daemon) metricsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(d.metrics.reg, promhttp.HandlerOpts{Registry: d.metrics.reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
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
	return mux
}

// readiness names every part that is not ready.
func (d *Daemon) readiness(ctx context.Context) []string {
	var problems []string
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := d.store.Stats(ctx); err != nil {
		problems = append(problems, "store: "+err.Error())
	}
	if t := d.term.Load(); t == nil || !t.Connected() {
		problems = append(problems, "broker: not connected")
	}
	if _, err := d.tokens.Readers(ctx); err != nil {
		problems = append(problems, "pcscd: "+err.Error())
	}
	return problems
}
