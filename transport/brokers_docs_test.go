package transport

import (
	"os"
	"strings"
	"testing"

	"github.com/tekenid/teken/internal/testenv"
)

// brokerSections are the headings of docs/BROKERS.md under which each
// broker's configuration stands.
var brokerSections = map[string]string{"mosquitto": "## Mosquitto", "nats": "## NATS", "rabbitmq": "## RabbitMQ"}

// TestBrokersDocGivesTheTestedSettings keeps docs/BROKERS.md honest: every
// configuration line the tests start a broker with as recommended
// (testenv.Recommended, which TestBrokerRestartKeepsJobs, TestLostResultAck,
// the shared brokers of the contract tests and internal/soak's
// TestLargeBacklog run) stands in a configuration block of that broker's
// section.
func TestBrokersDocGivesTheTestedSettings(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("../docs/BROKERS.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	for name, heading := range brokerSections {
		start := strings.Index(doc, "\n"+heading)
		if start < 0 {
			t.Errorf("docs/BROKERS.md has no section %q", heading)
			continue
		}
		section := doc[start+1:]
		if end := strings.Index(section[len(heading):], "\n## "); end >= 0 {
			section = section[:len(heading)+end]
		}
		shown := map[string]bool{}
		for i, block := range strings.Split(section, "```") {
			if i%2 == 0 {
				continue // prose between the fences
			}
			for _, line := range strings.Split(block, "\n") {
				line, _, _ = strings.Cut(line, "#") // a comment
				shown[strings.Join(strings.Fields(line), " ")] = true
			}
		}
		lines, mqtt := testenv.Recommended.ConfigLines(name)
		for _, l := range append(lines, mqtt...) {
			if !shown[strings.Join(strings.Fields(l), " ")] {
				t.Errorf("docs/BROKERS.md, %s: the tested line %q is not in its configuration", heading, l)
			}
		}
	}
}
