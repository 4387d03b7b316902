package api

import (
	"regexp"
	"strings"
	"testing"
)

// lexicalPatterns are the schemas' expressions each lexical form stands
// for.
var lexicalPatterns = []struct {
	name string
	form lexical
	re   *regexp.Regexp
}{
	{"ulid", ulidForm, regexp.MustCompile(`^[0-7][0-9A-HJKMNP-TV-Z]{25}$`)},
	{"uuid", uuidForm, regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)},
	{"sha256", sha256Form, regexp.MustCompile(`^[0-9a-f]{64}$`)},
	{"terminal", terminalIDForm, regexp.MustCompile(`^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$`)},
}

var lexicalSamples = []string{"", "a", "-", "a-", "-a", "a-b", "kendari-setda-01", strings.Repeat("a", 64), strings.Repeat("a", 65),
	"KENDARI", "01JGZ8Q4T5V6W7X8Y9Z0ABCDEF", "81JGZ8Q4T5V6W7X8Y9Z0ABCDEF", "01JGZ8Q4T5V6W7X8Y9Z0ABCDEI", "01jgz8q4t5v6w7x8y9z0abcdef",
	"0f8fad5b-d9cb-469f-a165-70867728950e", "0F8FAD5B-D9CB-469F-A165-70867728950E", "0f8fad5b-d9cb-469f-a165-70867728950", "0f8fad5bd-9cb-469f-a165-70867728950e",
	"dd2e7736d3bcdc0ff925115f507f96a378a87366eb7b8a5e3784f6338c784107", "dd2e7736d3bcdc0ff925115f507f96a378a87366eb7b8a5e3784f6338c78410g",
	"a\n", "\na", "é", strings.Repeat("0", 26)}

func TestLexicalForms(t *testing.T) {
	for _, p := range lexicalPatterns {
		for _, s := range lexicalSamples {
			if got, want := p.form.MatchString(s), p.re.MatchString(s); got != want {
				t.Errorf("%s %q: %v, the schema's expression says %v", p.name, s, got, want)
			}
		}
	}
}

func FuzzLexicalForms(f *testing.F) {
	for _, s := range lexicalSamples {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, p := range lexicalPatterns {
			if got, want := p.form.MatchString(s), p.re.MatchString(s); got != want {
				t.Fatalf("%s %q: %v, the schema's expression says %v", p.name, s, got, want)
			}
		}
	})
}
