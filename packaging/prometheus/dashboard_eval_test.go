package prometheus_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// panelExpr returns the query refID of the panel titled title.
func panelExpr(t *testing.T, d dashboard, title, refID string) string {
	t.Helper()
	for _, p := range flatPanels(d.Panels) {
		if p.Title != title {
			continue
		}
		for _, tg := range p.Targets {
			if tg.RefID == refID {
				return tg.Expr
			}
		}
	}
	t.Fatalf("dashboard has no panel %q with query %s", title, refID)
	return ""
}

// dashboardFixture is a small fleet, one sample an hour for 30 hours:
// terminal a signs 2 letters an hour, b one, c is down; a's signer
// certificate expires on day 11, c's on day 40, b has seen none.
const dashboardFixture = `
      - series: 'up{job="teken",instance="a:9470",terminal="a"}'
        values: '1x30'
      - series: 'up{job="teken",instance="b:9470",terminal="b"}'
        values: '1x30'
      - series: 'up{job="teken",instance="c:9470",terminal="c"}'
        values: '0x30'
      - series: 'teken_jobs_completed_total{job="teken",instance="a:9470",terminal="a",outcome="signed"}'
        values: '0+2x30'
      - series: 'teken_jobs_completed_total{job="teken",instance="a:9470",terminal="a",outcome="rejected"}'
        values: '0+1x30'
      - series: 'teken_jobs_completed_total{job="teken",instance="b:9470",terminal="b",outcome="signed"}'
        values: '0+1x30'
      - series: 'teken_signer_certificate_soonest_not_after_timestamp_seconds{job="teken",instance="a:9470",terminal="a"}'
        values: '950400x30'
      - series: 'teken_signer_certificate_soonest_not_after_timestamp_seconds{job="teken",instance="b:9470",terminal="b"}'
        values: '0x30'
      - series: 'teken_signer_certificate_soonest_not_after_timestamp_seconds{job="teken",instance="c:9470",terminal="c"}'
        values: '3456000x30'
      - series: 'teken_broker_connected{job="teken",instance="a:9470",terminal="a"}'
        values: '1x30'
      - series: 'teken_broker_connected{job="teken",instance="b:9470",terminal="b"}'
        values: '0x30'
      - series: 'teken_results_oldest_undelivered_age_seconds{job="teken",instance="a:9470",terminal="a"}'
        values: '0x30'
      - series: 'teken_results_oldest_undelivered_age_seconds{job="teken",instance="b:9470",terminal="b"}'
        values: '0+3600x30'
      - series: 'teken_build_info{job="teken",instance="a:9470",terminal="a",version="v1.2.0"}'
        values: '1x30'
      - series: 'teken_build_info{job="teken",instance="b:9470",terminal="b",version="v1.1.3"}'
        values: '1x30'
`

// TestDashboardQueryResults evaluates the dashboard's key queries on the
// fixture with promtool, as Grafana would with all terminals picked, at
// 24h (time() is 86400 there).
func TestDashboardQueryResults(t *testing.T) {
	d := loadDashboard(t)
	type sample struct{ labels, value string }
	tests := []struct {
		panel, refID string
		want         []sample
	}{
		{"Terminals up", "A", []sample{{"{}", "2"}}},
		{"Terminals up", "B", []sample{{"{}", "3"}}},
		{"Signed in the last 24 h", "A", []sample{{"{}", "72"}}},
		{"Signed per day", "A", []sample{{`{terminal="a"}`, "48"}, {`{terminal="b"}`, "24"}}},
		{"Signer certificate expiry", "A", []sample{{`{terminal="a"}`, "10"}, {`{terminal="c"}`, "39"}}},
		{"Broker disconnected", "A", []sample{{"{}", "1"}}},
		{"pcscd down", "A", []sample{{"{}", "0"}}}, // no terminal reports pcscd: none is counted down
		{"Delivery lag", "A", []sample{{`{terminal="a"}`, "0"}, {`{terminal="b"}`, "86400"}}},
		{"Build versions", "A", []sample{{`{terminal="a",version="v1.2.0"}`, "1"}, {`{terminal="b",version="v1.1.3"}`, "1"}}},
	}
	var b strings.Builder
	b.WriteString("rule_files: []\nevaluation_interval: 1h\ntests:\n  - interval: 1h\n    input_series:")
	b.WriteString(dashboardFixture)
	b.WriteString("    promql_expr_test:\n")
	for _, tt := range tests {
		expr := strings.ReplaceAll(panelExpr(t, d, tt.panel, tt.refID), "$terminal", ".*")
		q, err := json.Marshal(expr)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "      # %s, query %s\n      - expr: %s\n        eval_time: 24h\n        exp_samples:\n", tt.panel, tt.refID, q)
		for _, s := range tt.want {
			fmt.Fprintf(&b, "          - labels: '%s'\n            value: %s\n", s.labels, s.value)
		}
	}
	path := filepath.Join(t.TempDir(), "dashboard_test.yml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	promtool(t, "test", "rules", path)
}
