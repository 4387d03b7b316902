package packaging_test

import (
	"context"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tekenid/teken/internal/testenv"
)

// The gateway's alert rules, their promtool unit tests, the guide their
// runbook links point into, and where the package installs that guide.
const (
	gatewayRules     = repoRoot + "/packaging/prometheus/gateway-alerts.yml"
	gatewayRuleTests = repoRoot + "/packaging/prometheus/gateway-alerts_test.yml"
	gatewayGuide     = repoRoot + "/docs/GATEWAY.md"
	gatewayRunbook   = "file:///usr/share/doc/teken-gateway/GATEWAY.md#"
	gatewayMetrics   = repoRoot + "/gateway/metrics.go"
)

// gatewayPromtool runs promtool with args and returns its combined output;
// it fails the test on a non-zero exit.
func gatewayPromtool(t *testing.T, args ...string) string {
	t.Helper()
	bin := testenv.LookPath(t, "promtool")
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestGatewayAlertRulesCheck(t *testing.T) {
	out := gatewayPromtool(t, "check", "rules", gatewayRules)
	if !strings.Contains(out, "SUCCESS") || strings.Contains(strings.ToUpper(out), "WARN") {
		t.Fatalf("promtool check rules is not clean:\n%s", out)
	}
}

func TestGatewayAlertRulesUnitTests(t *testing.T) {
	out := gatewayPromtool(t, "test", "rules", gatewayRuleTests)
	if !strings.Contains(out, "SUCCESS") {
		t.Fatalf("promtool test rules:\n%s", out)
	}
}

// alertRule is what TestGatewayAlertsComplete needs of one alerting rule.
type alertRule struct {
	name, expr, severity string
	annotations          map[string]string // single-line values; "" for block scalars
}

// readAlertRules reads the alerting rules of a rule file as rule files
// are written here: "- alert:" starts a rule, expr is one line or a block
// scalar, labels and annotations are mappings below their key. promtool
// validates the file in full; this keeps the module free of a YAML
// dependency.
func readAlertRules(t *testing.T, path string) []alertRule {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var (
		rules      []alertRule
		mapping    string // "labels" or "annotations" while inside one
		mapIndent  int
		exprIndent = -1 // indent of a block-scalar expr's key while reading it
	)
	for line := range strings.Lines(string(raw)) {
		trimmed := strings.TrimSpace(line)
		indent := len(line) - len(strings.TrimLeft(line, " "))
		if exprIndent >= 0 {
			if trimmed == "" || indent > exprIndent {
				r := &rules[len(rules)-1]
				r.expr = strings.TrimSpace(r.expr + "\n" + trimmed)
				continue
			}
			exprIndent = -1
		}
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		if name, ok := strings.CutPrefix(trimmed, "- alert: "); ok {
			rules = append(rules, alertRule{name: strings.Trim(name, `"'`), annotations: map[string]string{}})
			mapping = ""
			continue
		}
		if len(rules) == 0 {
			continue
		}
		r := &rules[len(rules)-1]
		key, value, _ := strings.Cut(trimmed, ":")
		value = strings.Trim(strings.TrimSpace(value), `"'`)
		if mapping != "" && indent > mapIndent {
			switch {
			case mapping == "labels" && key == "severity":
				r.severity = value
			case mapping == "annotations":
				if value == ">-" || value == ">" || value == "|" || value == "|-" {
					value = ""
				}
				r.annotations[key] = value
			}
			continue
		}
		mapping = ""
		switch key {
		case "labels", "annotations":
			mapping, mapIndent = key, indent
		case "expr":
			if value == "|" || value == "|-" || value == ">-" {
				exprIndent = indent
			} else {
				r.expr = value
			}
		}
	}
	return rules
}

// gatewayTestCases returns, per alert name, whether the promtool tests
// have a case where it fires and one where it must not. Each
// alert_rule_test case starts with its eval_time.
func gatewayTestCases(t *testing.T, path string) (firing, silent map[string]bool) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	firing, silent = map[string]bool{}, map[string]bool{}
	var name, exp string
	flush := func() {
		switch {
		case name == "":
		case exp == "[]":
			silent[name] = true
		case exp == "":
			firing[name] = true
		}
		name, exp = "", "absent"
	}
	for line := range strings.Lines(string(raw)) {
		trimmed := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(trimmed, "- eval_time:"), strings.HasPrefix(trimmed, "- name:"):
			flush()
		case strings.HasPrefix(trimmed, "alertname:"):
			name = strings.TrimSpace(strings.TrimPrefix(trimmed, "alertname:"))
		case strings.HasPrefix(trimmed, "exp_alerts:"):
			exp = strings.TrimSpace(strings.TrimPrefix(trimmed, "exp_alerts:"))
		}
	}
	flush()
	return firing, silent
}

// gatewayMetricNames are the series tekengw exports, read from its
// source: a rule naming anything else would silently match nothing.
func gatewayMetricNames(t *testing.T) map[string]bool {
	t.Helper()
	src, err := os.ReadFile(gatewayMetrics)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, m := range regexp.MustCompile(`(Counter|Gauge|Histogram)Opts\{Name: "(teken_gateway_\w+)"|NewDesc\("(teken_gateway_\w+)"`).FindAllStringSubmatch(string(src), -1) {
		switch {
		case m[1] == "Histogram":
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				names[m[2]+suffix] = true
			}
		case m[2] != "":
			names[m[2]] = true
		default:
			names[m[3]] = true
		}
	}
	if len(names) < 8 {
		t.Fatalf("found only %d metric names in %s: is the pattern still right? %v", len(names), gatewayMetrics, names)
	}
	return names
}

// headingAnchors are the fragments a Markdown renderer gives the headings
// of a document (GitHub's rule: lower case, spaces to hyphens, other
// punctuation dropped).
func headingAnchors(doc string) map[string]bool {
	anchors := map[string]bool{}
	drop := regexp.MustCompile(`[^a-z0-9 _-]`)
	for _, m := range regexp.MustCompile(`(?m)^#+ +(.+?) *$`).FindAllStringSubmatch(doc, -1) {
		anchors[strings.ReplaceAll(drop.ReplaceAllString(strings.ToLower(m[1]), ""), " ", "-")] = true
	}
	return anchors
}

// TestGatewayAlertsComplete: every gateway alert has a severity, both
// languages' texts, a runbook link into the packaged guide that the guide
// answers with a heading, selects only metrics the gateway exports, and
// has promtool cases where it fires and where it stays silent.
func TestGatewayAlertsComplete(t *testing.T) {
	rules := readAlertRules(t, gatewayRules)
	if len(rules) < 7 {
		t.Fatalf("found %d alerting rules in %s, want at least 7", len(rules), gatewayRules)
	}
	firing, silent := gatewayTestCases(t, gatewayRuleTests)
	metrics := gatewayMetricNames(t)
	guide, err := os.ReadFile(gatewayGuide)
	if err != nil {
		t.Fatalf("the runbook links point into %s: %v", gatewayGuide, err)
	}
	anchors := headingAnchors(string(guide))
	nfpm, err := os.ReadFile(repoRoot + "/packaging/gateway/nfpm.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if dst := strings.TrimPrefix(strings.TrimSuffix(gatewayRunbook, "#"), "file://"); !strings.Contains(string(nfpm), "dst: "+dst+"\n") {
		t.Errorf("packaging/gateway/nfpm.yaml does not install %s, where the runbook links point", dst)
	}
	seen := map[string]bool{}
	metricName := regexp.MustCompile(`\b(teken_\w+|up)\b`)
	for _, r := range rules {
		t.Run(r.name, func(t *testing.T) {
			if seen[r.name] {
				t.Errorf("alert %s defined twice", r.name)
			}
			seen[r.name] = true
			if !strings.HasPrefix(r.name, "TekenGateway") {
				t.Errorf("name %s does not start with TekenGateway", r.name)
			}
			if !slices.Contains([]string{"critical", "warning", "info"}, r.severity) {
				t.Errorf("severity = %q, want critical, warning or info", r.severity)
			}
			for _, a := range []string{"summary", "summary_id", "description", "description_id", "runbook_url"} {
				if _, ok := r.annotations[a]; !ok {
					t.Errorf("annotation %s missing", a)
				}
			}
			fragment := strings.ToLower(r.name)
			if got := r.annotations["runbook_url"]; got != gatewayRunbook+fragment {
				t.Errorf("runbook_url %q, want %s", got, gatewayRunbook+fragment)
			}
			if !anchors[fragment] {
				t.Errorf("%s has no heading %q, so the runbook link #%s leads nowhere", gatewayGuide, r.name, fragment)
			}
			names := metricName.FindAllString(r.expr, -1)
			if len(names) == 0 {
				t.Errorf("expr %q selects no metric", r.expr)
			}
			for _, n := range names {
				if n == "up" {
					if !strings.Contains(r.expr, `up{job="teken-gateway"}`) {
						t.Errorf("expr %q selects up of other jobs than teken-gateway", r.expr)
					}
					continue
				}
				if !metrics[n] {
					t.Errorf("expr selects %s, which tekengw does not export (%s)", n, gatewayMetrics)
				}
			}
			if !firing[r.name] {
				t.Errorf("%s has no test case where it fires", r.name)
			}
			if !silent[r.name] {
				t.Errorf("%s has no test case where it stays silent (exp_alerts: [])", r.name)
			}
		})
	}
	for name := range firing {
		if !seen[name] {
			t.Errorf("%s tests an alert that %s does not define", gatewayRuleTests, name)
		}
	}
}

func TestGatewayHeadingAnchors(t *testing.T) {
	got := headingAnchors("# The Teken gateway: a guide\n\n```\n$ tekengw key\n```\n### TekenGatewayDown\n## Webhooks  \ntext # not a heading\n")
	for _, want := range []string{"the-teken-gateway-a-guide", "tekengatewaydown", "webhooks"} {
		if !got[want] {
			t.Errorf("headingAnchors lacks %q: %v", want, got)
		}
	}
	if got["not-a-heading"] {
		t.Errorf("headingAnchors took text for a heading: %v", got)
	}
}
