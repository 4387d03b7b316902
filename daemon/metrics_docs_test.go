package daemon

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestEveryMetricDocumented: the metrics table of docs/MONITORING.md names
// every metric tekend registers, and nothing it does not. The Go and
// process collectors' own metrics are one row there (`teken_process_*`).
func TestEveryMetricDocumented(t *testing.T) {
	reg := newMetrics().reg
	reg.MustRegister(newStateCollector(&Daemon{}), newStoreCollector(nil), newBrokerCollector(&Daemon{}))
	ch := make(chan *prometheus.Desc)
	go func() { reg.Describe(ch); close(ch) }()
	fqName := regexp.MustCompile(`fqName: "([^"]+)"`)
	var registered []string
	for d := range ch {
		m := fqName.FindStringSubmatch(d.String())
		if m == nil {
			t.Fatalf("descriptor without a name: %s", d)
		}
		if strings.HasPrefix(m[1], "go_") || strings.HasPrefix(m[1], "teken_process_") {
			continue
		}
		registered = append(registered, m[1])
	}
	doc, err := os.ReadFile(filepath.Join("..", "docs", "MONITORING.md"))
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `(teken_[a-z_]+)` \\|")
	var documented []string
	for _, m := range row.FindAllStringSubmatch(string(doc), -1) {
		documented = append(documented, m[1])
	}
	slices.Sort(registered)
	slices.Sort(documented)
	for _, name := range registered {
		if _, found := slices.BinarySearch(documented, name); !found {
			t.Errorf("%s is exported but not in docs/MONITORING.md's metrics table", name)
		}
	}
	for _, name := range documented {
		if _, found := slices.BinarySearch(registered, name); !found {
			t.Errorf("docs/MONITORING.md documents %s, which tekend does not export", name)
		}
	}
	if len(registered) < 20 {
		t.Fatalf("only %d metrics found: %v", len(registered), registered)
	}
}
