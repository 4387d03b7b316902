package prometheus_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

const dashboardFile = "../grafana/teken.json"

// dsRef is how every panel and target names the datasource, so that the
// import dialog asks for it through __inputs.
const dsRef = "${DS_PROMETHEUS}"

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type target struct {
	Expr       string      `json:"expr"`
	RefID      string      `json:"refId"`
	Datasource *datasource `json:"datasource"`
}

type gridPos struct{ H, W, X, Y int }

type panel struct {
	ID         int         `json:"id"`
	Type       string      `json:"type"`
	Title      string      `json:"title"`
	GridPos    *gridPos    `json:"gridPos"`
	Datasource *datasource `json:"datasource"`
	Targets    []target    `json:"targets"`
	Panels     []panel     `json:"panels"` // a collapsed row's
}

type dashboard struct {
	UID           string `json:"uid"`
	Title         string `json:"title"`
	SchemaVersion int    `json:"schemaVersion"`
	Inputs        []struct {
		Name, Type, PluginID string
	} `json:"__inputs"`
	Requires []struct {
		Type, ID string
	} `json:"__requires"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Definition string          `json:"definition"`
			Query      json.RawMessage `json:"query"`
			Datasource *datasource     `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
}

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	data, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	if !json.Valid(data) {
		t.Fatalf("%s is not valid JSON", dashboardFile)
	}
	var d dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("decode %s: %v", dashboardFile, err)
	}
	return d
}

// flatPanels returns the panels, those inside collapsed rows included.
func flatPanels(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, flatPanels(p.Panels)...)
	}
	return out
}

func TestDashboardImportable(t *testing.T) {
	d := loadDashboard(t)
	if d.UID == "" || len(d.UID) > 40 {
		t.Errorf("uid = %q, want a fixed uid of at most 40 characters", d.UID)
	}
	if d.Title == "" {
		t.Error("no title")
	}
	if d.SchemaVersion < 36 {
		t.Errorf("schemaVersion = %d, want 36 or later (Grafana 9+)", d.SchemaVersion)
	}
	if !slices.ContainsFunc(d.Inputs, func(in struct{ Name, Type, PluginID string }) bool {
		return in.Name == "DS_PROMETHEUS" && in.Type == "datasource" && in.PluginID == "prometheus"
	}) {
		t.Errorf("__inputs lacks the DS_PROMETHEUS prometheus datasource: %+v", d.Inputs)
	}
	requires := map[string]bool{}
	for _, r := range d.Requires {
		requires[r.Type+"/"+r.ID] = true
	}
	for _, need := range []string{"grafana/grafana", "datasource/prometheus"} {
		if !requires[need] {
			t.Errorf("__requires lacks %s", need)
		}
	}
	ids := map[int]string{}
	for _, p := range flatPanels(d.Panels) {
		if prev, dup := ids[p.ID]; dup || p.ID == 0 {
			t.Errorf("panel %q: id %d missing or shared with %q", p.Title, p.ID, prev)
		}
		ids[p.ID] = p.Title
		if p.GridPos == nil || p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q: bad gridPos %+v", p.Title, p.GridPos)
		}
		if p.Type == "row" {
			continue
		}
		if !requires["panel/"+p.Type] {
			t.Errorf("panel %q: type %s not in __requires", p.Title, p.Type)
		}
		if p.Datasource == nil || p.Datasource.UID != dsRef {
			t.Errorf("panel %q: datasource %+v, want uid %s", p.Title, p.Datasource, dsRef)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			if tg.Datasource == nil || tg.Datasource.UID != dsRef {
				t.Errorf("panel %q query %s: datasource %+v, want uid %s", p.Title, tg.RefID, tg.Datasource, dsRef)
			}
		}
	}
	if overlaps := overlapping(flatPanels(d.Panels)); len(overlaps) > 0 {
		t.Errorf("panels overlap: %q", overlaps)
	}
}

// overlapping returns pairs of top-level panels whose grid cells collide.
func overlapping(ps []panel) []string {
	var out []string
	for i, a := range ps {
		for _, b := range ps[i+1:] {
			if a.GridPos == nil || b.GridPos == nil {
				continue
			}
			p, q := *a.GridPos, *b.GridPos
			if p.X < q.X+q.W && q.X < p.X+p.W && p.Y < q.Y+q.H && q.Y < p.Y+p.H {
				out = append(out, a.Title+" / "+b.Title)
			}
		}
	}
	return out
}

func TestDashboardTerminalVariable(t *testing.T) {
	d := loadDashboard(t)
	for _, v := range d.Templating.List {
		if v.Name != "terminal" {
			continue
		}
		if v.Type != "query" || v.Datasource == nil || v.Datasource.UID != dsRef {
			t.Errorf("variable terminal: type %q datasource %+v, want a query on %s", v.Type, v.Datasource, dsRef)
		}
		want := "label_values(teken_build_info, terminal)"
		var q struct{ Query string }
		if err := json.Unmarshal(v.Query, &q); err != nil || q.Query != want || v.Definition != want {
			t.Errorf("variable terminal: query %s, definition %q, want %q", v.Query, v.Definition, want)
		}
		return
	}
	t.Fatal("no templating variable named terminal")
}

// grafanaVars are replaced by values of the right kind before promtool
// checks an expression.
var grafanaVars = strings.NewReplacer(
	"${terminal}", "kendari-setda-01", "$terminal", "kendari-setda-01",
	"$__rate_interval", "5m", "$__interval", "1m", "$__range", "1d",
)

func TestDashboardQueries(t *testing.T) {
	d := loadDashboard(t)
	var recs strings.Builder
	recs.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	n := 0
	for _, p := range flatPanels(d.Panels) {
		for _, tg := range p.Targets {
			where := fmt.Sprintf("panel %q query %s", p.Title, tg.RefID)
			if strings.TrimSpace(tg.Expr) == "" {
				t.Errorf("%s: empty expr", where)
				continue
			}
			bad, err := unknownMetrics(tg.Expr)
			if err != nil {
				t.Errorf("%s: %v", where, err)
				continue
			}
			if len(bad) > 0 {
				t.Errorf("%s selects metrics no terminal exports: %q", where, bad)
			}
			// Every query follows the terminal picker.
			if !regexp.MustCompile(`terminal=~"\$terminal"`).MatchString(tg.Expr) {
				t.Errorf("%s ignores $terminal: %s", where, tg.Expr)
			}
			expr, err := json.Marshal(grafanaVars.Replace(tg.Expr)) // a JSON string is a YAML string
			if err != nil {
				t.Fatal(err)
			}
			n++
			fmt.Fprintf(&recs, "      - record: dashboard:query_%d\n        expr: %s\n", n, expr)
		}
	}
	if n == 0 {
		t.Fatal("dashboard has no queries")
	}
	// promtool parses each query with Prometheus's own PromQL parser.
	path := filepath.Join(t.TempDir(), "dashboard_queries.yml")
	if err := os.WriteFile(path, []byte(recs.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	out := promtool(t, "check", "rules", path)
	if !strings.Contains(out, fmt.Sprintf("%d rules found", n)) {
		t.Errorf("promtool checked fewer queries than %d:\n%s", n, out)
	}
}
