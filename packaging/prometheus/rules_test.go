package prometheus_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tekenid/teken/internal/testenv"
)

// Paths are relative to this directory, where go test runs.
const (
	rulesFile     = "alerts.yml"
	ruleTestsFile = "alerts_test.yml"
	docFile       = "../../docs/MONITORING.md"
)

// promtool runs promtool with args and returns its combined output; it
// fails the test on a non-zero exit.
func promtool(t *testing.T, args ...string) string {
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

func TestCheckRules(t *testing.T) {
	out := promtool(t, "check", "rules", rulesFile)
	if !strings.Contains(out, "SUCCESS") || strings.Contains(strings.ToUpper(out), "WARN") {
		t.Fatalf("promtool check rules is not clean:\n%s", out)
	}
}

func TestRuleUnitTests(t *testing.T) {
	out := promtool(t, "test", "rules", ruleTestsFile)
	if !strings.Contains(out, "SUCCESS") {
		t.Fatalf("promtool test rules:\n%s", out)
	}
}

// rule is one alerting rule of alerts.yml, its nested keys flattened
// ("labels.severity", "annotations.summary").
type rule struct {
	name   string
	fields map[string]string
}

// parseRules reads the alerting rules of a rule file. It knows only the
// YAML that rule files use (mappings, lists, quoted and block scalars),
// which keeps the module free of a YAML dependency; promtool validates the
// file in full.
func parseRules(path string) ([]rule, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read rules: %w", err)
	}
	type frame struct {
		indent int
		key    string
	}
	var (
		rules       []rule
		stack       []frame
		block       string // flattened key of the block scalar being read
		blockIndent int
		blockSep    string
	)
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		indent := len(line) - len(strings.TrimLeft(line, " "))
		if block != "" {
			if trimmed == "" || indent > blockIndent {
				r := &rules[len(rules)-1]
				if r.fields[block] != "" {
					r.fields[block] += blockSep
				}
				r.fields[block] += trimmed
				continue
			}
			block = ""
		}
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		if rest, ok := strings.CutPrefix(trimmed, "- "); ok {
			indent += 2
			trimmed = rest
			if name, ok := strings.CutPrefix(trimmed, "alert: "); ok {
				rules = append(rules, rule{name: unquote(name), fields: map[string]string{}})
				stack = []frame{{indent: indent - 1, key: ""}}
				continue
			}
			if len(stack) > 0 && indent-1 <= stack[0].indent {
				stack = nil // a recording rule or another list: not an alert's
			}
		}
		key, value, ok := strings.Cut(trimmed, ":")
		if !ok {
			return nil, fmt.Errorf("%s:%d: not a key: %q", path, n, line)
		}
		for len(stack) > 0 && stack[len(stack)-1].indent >= indent {
			stack = stack[:len(stack)-1]
		}
		if len(rules) == 0 || len(stack) == 0 {
			stack = nil // outside any alerting rule
			continue
		}
		var path []string
		for _, f := range stack[1:] {
			path = append(path, f.key)
		}
		flat := strings.Join(append(path, key), ".")
		value = strings.TrimSpace(value)
		switch value {
		case "":
			stack = append(stack, frame{indent: indent, key: key})
		case ">", ">-", "|", "|-":
			block, blockIndent, blockSep = flat, indent, " "
			if value[0] == '|' {
				blockSep = "\n"
			}
		default:
			rules[len(rules)-1].fields[flat] = unquote(value)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("scan rules: %w", err)
	}
	return rules, nil
}

func unquote(s string) string {
	s = strings.TrimSpace(s)
	if len(s) >= 2 && (s[0] == '"' && s[len(s)-1] == '"' || s[0] == '\'' && s[len(s)-1] == '\'') {
		return s[1 : len(s)-1]
	}
	return s
}

// ruleCases returns, per alert name, whether alerts_test.yml has a case
// where it fires and one where it must not. Each alert_rule_test case
// starts with its eval_time.
func ruleCases(path string) (firing, silent map[string]bool, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read rule tests: %w", err)
	}
	firing, silent = map[string]bool{}, map[string]bool{}
	var name, exp string
	inCase := false
	flush := func() {
		if name != "" {
			switch exp {
			case "[]":
				silent[name] = true
			case "":
				firing[name] = true
			}
		}
		name, exp = "", "absent"
	}
	for n, line := range strings.Split(string(data), "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(trimmed, "- eval_time:"):
			flush()
			inCase = true
		case strings.HasPrefix(trimmed, "- name:"), strings.HasPrefix(trimmed, "- interval:"):
			flush()
			inCase = false
		case strings.HasPrefix(trimmed, "alertname:"):
			if !inCase {
				return nil, nil, fmt.Errorf("%s:%d: alertname outside a case that starts with eval_time", path, n+1)
			}
			name = unquote(strings.TrimPrefix(trimmed, "alertname:"))
		case strings.HasPrefix(trimmed, "exp_alerts:"):
			exp = strings.TrimSpace(strings.TrimPrefix(trimmed, "exp_alerts:"))
		}
	}
	flush()
	return firing, silent, nil
}

// requiredAnnotations are on every alert: English and Bahasa Indonesia, and
// where to read on.
var requiredAnnotations = []string{"summary", "description", "summary_id", "description_id", "runbook"}

func TestAlertsComplete(t *testing.T) {
	rules, err := parseRules(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	if len(rules) < 9 {
		t.Fatalf("found %d alerting rules in %s, want at least 9", len(rules), rulesFile)
	}
	firing, silent, err := ruleCases(ruleTestsFile)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(docFile)
	if err != nil {
		t.Fatal(err)
	}
	headings := regexp.MustCompile(`(?m)^#+ +(Teken\w+)`).FindAllStringSubmatch(string(doc), -1)
	var documented []string
	for _, h := range headings {
		documented = append(documented, h[1])
	}
	seen := map[string]bool{}
	for _, r := range rules {
		t.Run(r.name, func(t *testing.T) {
			if seen[r.name] {
				t.Errorf("alert %s defined twice", r.name)
			}
			seen[r.name] = true
			if sev := r.fields["labels.severity"]; !slices.Contains([]string{"critical", "warning", "info"}, sev) {
				t.Errorf("severity = %q, want critical, warning or info", sev)
			}
			for _, a := range requiredAnnotations {
				if strings.TrimSpace(r.fields["annotations."+a]) == "" {
					t.Errorf("annotation %s missing", a)
				}
			}
			anchor := "docs/MONITORING.md#" + strings.ToLower(r.name)
			if !strings.HasPrefix(r.fields["annotations.runbook"], anchor) {
				t.Errorf("runbook %q does not start with %s", r.fields["annotations.runbook"], anchor)
			}
			if !slices.Contains(documented, r.name) {
				t.Errorf("%s has no heading %q in %s", r.name, r.name, docFile)
			}
			expr := r.fields["expr"]
			bad, err := unknownMetrics(expr)
			if err != nil {
				t.Fatal(err)
			}
			if len(bad) > 0 {
				t.Errorf("expr selects metrics no terminal exports: %q", bad)
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
			t.Errorf("%s tests an alert that %s does not define", ruleTestsFile, name)
		}
	}
}

func TestParseRules(t *testing.T) {
	const text = `groups:
  - name: g
    rules:
      - record: not:an:alert
        expr: up
      - alert: A
        expr: up == 0
        for: 5m
        labels:
          severity: "critical"
        annotations:
          summary: 'a {{ $labels.x }}'
          description: >-
            first line
            second line
      - record: also:not:an:alert
        expr: down
      - alert: B
        # comment
        expr: |
          x
          and y
        annotations:
          summary: b
`
	path := t.TempDir() + "/rules.yml"
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := parseRules(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []rule{
		{"A", map[string]string{"expr": "up == 0", "for": "5m", "labels.severity": "critical",
			"annotations.summary": "a {{ $labels.x }}", "annotations.description": "first line second line"}},
		{"B", map[string]string{"expr": "x\nand y", "annotations.summary": "b"}},
	}
	if len(got) != len(want) {
		t.Fatalf("parseRules = %v, want %v", got, want)
	}
	for i := range want {
		if got[i].name != want[i].name || !maps.Equal(got[i].fields, want[i].fields) {
			t.Errorf("rule %d = %v, want %v", i, got[i], want[i])
		}
	}
}
