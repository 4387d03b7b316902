package prometheus_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// exported lists the metric names tekend exports (docs/MONITORING.md), plus
// up and the node_exporter filesystem metrics. A rule or panel that names
// anything else would silently match nothing, so the tests reject it.
var exported = []string{
	"up",
	"teken_jobs_received_total",
	"teken_jobs_completed_total",
	"teken_jobs_waiting",
	"teken_jobs_oldest_waiting_age_seconds",
	"teken_results_undelivered",
	"teken_results_oldest_undelivered_age_seconds",
	"teken_pin_failures_total",
	"teken_token_present",
	"teken_token_pin_retries",
	"teken_signer_certificate_not_after_timestamp_seconds",
	"teken_signer_certificate_soonest_not_after_timestamp_seconds",
	"teken_pcscd_up",
	"teken_broker_connected",
	"teken_broker_connects_total",
	"teken_last_result_delivery_timestamp_seconds",
	"teken_store_size_bytes",
	"teken_store_max_size_bytes",
	"teken_build_info",
	"teken_intake_failures_total",
	"teken_intake_retrying",
	"teken_store_full",
	"teken_broker_stalled",
	"node_filesystem_avail_bytes",
	"node_filesystem_size_bytes",
}

// histograms are exported as their _bucket, _sum and _count series.
var histograms = []string{"teken_job_wait_seconds", "teken_card_sign_seconds", "teken_sign_batch_seconds"}

// knownMetric reports whether name is a series tekend, Prometheus or
// node_exporter produces on a terminal.
func knownMetric(name string) bool {
	if slices.Contains(exported, name) {
		return true
	}
	for _, h := range histograms {
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if name == h+suffix {
				return true
			}
		}
	}
	// The Go and process collectors; only the latter takes the namespace.
	return strings.HasPrefix(name, "go_") || strings.HasPrefix(name, "teken_process_")
}

// aggregations and keywords are PromQL words that are not metric names.
var (
	aggregations = []string{"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count",
		"count_values", "bottomk", "topk", "quantile", "limitk", "limit_ratio"}
	keywords = []string{"and", "or", "unless", "bool", "offset", "atan2"}
	// labelLists are followed by a parenthesised list of label names.
	labelLists = []string{"by", "without", "on", "ignoring", "group_left", "group_right"}
)

// metricNames returns the metric names a PromQL expression selects. It is a
// scanner, not a parser (the Prometheus parser would pull its whole module
// in); promtool checks the syntax separately. Grafana variables ($x, ${x})
// are skipped.
func metricNames(expr string) ([]string, error) {
	var names []string
	s := expr
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			end, err := skipString(s, i)
			if err != nil {
				return nil, err
			}
			i = end
		case c == '#':
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case c == '{':
			end, err := closeBrace(s, i)
			if err != nil {
				return nil, err
			}
			inner, err := nameMatcher(s[i+1 : end])
			if err != nil {
				return nil, err
			}
			if inner != "" {
				names = append(names, inner)
			}
			i = end + 1
		case c == '[':
			end := strings.IndexByte(s[i:], ']')
			if end < 0 {
				return nil, fmt.Errorf("unclosed [ at %d", i)
			}
			i += end + 1
		case c == '$':
			i++
			if i < len(s) && s[i] == '{' {
				for i < len(s) && s[i] != '}' {
					i++
				}
				i++
				continue
			}
			for i < len(s) && isIdent(s[i], true) {
				i++
			}
		case c >= '0' && c <= '9' || c == '.':
			i++
			for i < len(s) && (isIdent(s[i], true) || s[i] == '.' ||
				(s[i] == '-' || s[i] == '+') && (s[i-1] == 'e' || s[i-1] == 'E')) {
				i++
			}
		case isIdent(c, false):
			start := i
			for i < len(s) && isIdent(s[i], true) {
				i++
			}
			word := s[start:i]
			next := nextNonSpace(s, i)
			lower := strings.ToLower(word)
			switch {
			case slices.Contains(labelLists, word):
				if next < len(s) && s[next] == '(' {
					end := strings.IndexByte(s[next:], ')')
					if end < 0 {
						return nil, fmt.Errorf("unclosed label list after %s", word)
					}
					i = next + end + 1
				}
			case slices.Contains(keywords, word), slices.Contains(aggregations, word),
				lower == "inf", lower == "nan":
			case next < len(s) && s[next] == '(':
				// A function call.
			default:
				names = append(names, word)
			}
		default:
			i++
		}
	}
	return names, nil
}

// nameMatcher returns the metric a {__name__="x"} matcher selects, or an
// error for a __name__ matcher that is not an equality.
func nameMatcher(matchers string) (string, error) {
	idx := strings.Index(matchers, "__name__")
	if idx < 0 {
		return "", nil
	}
	rest := strings.TrimLeft(matchers[idx+len("__name__"):], " \t\n")
	if !strings.HasPrefix(rest, "=") || strings.HasPrefix(rest, "=~") {
		return "", fmt.Errorf("__name__ matcher %q is not an equality", matchers)
	}
	rest = strings.TrimLeft(rest[1:], " \t\n")
	if rest == "" {
		return "", fmt.Errorf("empty __name__ matcher")
	}
	end, err := skipString(rest, 0)
	if err != nil {
		return "", err
	}
	return rest[1 : end-1], nil
}

// closeBrace returns the index of the } that closes the matchers at s[i],
// skipping label values, which may hold braces (Grafana's ${var}).
func closeBrace(s string, i int) (int, error) {
	for j := i + 1; j < len(s); {
		switch s[j] {
		case '"', '\'', '`':
			end, err := skipString(s, j)
			if err != nil {
				return 0, err
			}
			j = end
		case '}':
			return j, nil
		default:
			j++
		}
	}
	return 0, fmt.Errorf("unclosed { at %d", i)
}

// skipString returns the index just past the string literal at s[i].
func skipString(s string, i int) (int, error) {
	q := s[i]
	for j := i + 1; j < len(s); j++ {
		switch {
		case s[j] == '\\' && q != '`':
			j++
		case s[j] == q:
			return j + 1, nil
		}
	}
	return 0, fmt.Errorf("unclosed string at %d", i)
}

func isIdent(c byte, inner bool) bool {
	return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || inner && c >= '0' && c <= '9'
}

func nextNonSpace(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') {
		i++
	}
	return i
}

// unknownMetrics returns the names expr selects that no terminal exports.
func unknownMetrics(expr string) ([]string, error) {
	names, err := metricNames(expr)
	if err != nil {
		return nil, fmt.Errorf("scan %q: %w", expr, err)
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("scan %q: selects no metric", expr)
	}
	var bad []string
	for _, n := range names {
		if !knownMetric(n) {
			bad = append(bad, n)
		}
	}
	return bad, nil
}

func TestMetricNames(t *testing.T) {
	tests := []struct {
		name, expr string
		want       []string
		wantErr    bool
	}{
		{"bare", "up", []string{"up"}, false},
		{"selector", `up{job="teken",terminal=~"$terminal"} == 0`, []string{"up"}, false},
		{"label value looks like a metric", `teken_jobs_completed_total{outcome="teken_fake"}`, []string{"teken_jobs_completed_total"}, false},
		{"aggregation with by", `sum by (terminal, reason) (increase(teken_jobs_received_total{result="refused"}[1h])) > 0`,
			[]string{"teken_jobs_received_total"}, false},
		{"by after the body", `max(teken_pcscd_up) without (instance)`, []string{"teken_pcscd_up"}, false},
		{"vector matching", `a / on (instance) group_left (version) b`, []string{"a", "b"}, false},
		{"set operators", `x > 0 and y - time() < 30 * 86400 unless z`, []string{"x", "y", "z"}, false},
		{"numbers", `teken_store_size_bytes > 1e9 or teken_x < 0x1F or w > 1.5e-3 or v != Inf or u == NaN`,
			[]string{"teken_store_size_bytes", "teken_x", "w", "v", "u"}, false},
		{"subquery and offset", `max_over_time(rate(go_gc_duration_seconds_count[5m])[1h:1m] offset 1d)`,
			[]string{"go_gc_duration_seconds_count"}, false},
		{"grafana variables", `rate(teken_pin_failures_total{terminal=~"${terminal}"}[$__rate_interval]) * $factor`,
			[]string{"teken_pin_failures_total"}, false},
		{"strings in functions", `label_replace(teken_build_info, "v", "$1", "version", "(.*)")`, []string{"teken_build_info"}, false},
		{"name matcher", `{__name__="teken_pcscd_up", job="teken"}`, []string{"teken_pcscd_up"}, false},
		{"name regex", `{__name__=~"teken_.*"}`, nil, true},
		{"recorded name", `instance:node_cpu:ratio`, []string{"instance:node_cpu:ratio"}, false},
		{"comment", "up # teken_nothing\n", []string{"up"}, false},
		{"unclosed brace", `up{job="teken"`, nil, true},
		{"unclosed string", `up{job="teken}`, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := metricNames(tt.expr)
			if (err != nil) != tt.wantErr {
				t.Fatalf("metricNames(%q) error = %v, want error %v", tt.expr, err, tt.wantErr)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("metricNames(%q) = %q, want %q", tt.expr, got, tt.want)
			}
		})
	}
}

func TestKnownMetric(t *testing.T) {
	tests := []struct {
		name string
		want bool
	}{
		{"up", true},
		{"teken_jobs_waiting", true},
		{"teken_job_wait_seconds_bucket", true},
		{"teken_card_sign_seconds_count", true},
		{"teken_job_wait_seconds", false}, // a histogram has no bare series
		{"teken_process_resident_memory_bytes", true},
		{"go_goroutines", true},
		{"process_resident_memory_bytes", false}, // the process collector is namespaced
		{"teken_jobs_wating", false},
		{"node_filesystem_avail_bytes", true},
		{"node_load1", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := knownMetric(tt.name); got != tt.want {
				t.Errorf("knownMetric(%q) = %v, want %v", tt.name, got, tt.want)
			}
		})
	}
}
