package gateway

import (
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tekenid/teken/api"
)

func TestCataloguesHaveTheSameCodes(t *testing.T) {
	en, id := slices.Sorted(maps.Keys(catalogue["en"])), slices.Sorted(maps.Keys(catalogue["id"]))
	if !slices.Equal(en, id) {
		t.Fatalf("codes differ:\nen %v\nid %v", en, id)
	}
	for _, code := range en {
		if catalogue["en"][code] == catalogue["id"][code] {
			t.Errorf("%s: the same text in both languages", code)
		}
	}
}

func TestBackoffDoublesUpToTheCap(t *testing.T) {
	least, most := 5*time.Second, time.Hour
	prev := time.Duration(0)
	for n := range 40 {
		d := backoff(n, least, most)
		if d > most || d < least*4/5 {
			t.Fatalf("attempt %d: %v outside [%v, %v]", n, d, least*4/5, most)
		}
		if n < 5 && d <= prev*3/2 {
			t.Fatalf("attempt %d: %v does not grow from %v", n, d, prev)
		}
		prev = d
	}
	if d := backoff(1000, least, most); d < most*4/5 {
		t.Fatalf("after many attempts %v, want about %v", d, most)
	}
}

func TestSignatureHeader(t *testing.T) {
	at := time.Unix(1764806400, 0)
	got := Sign([]byte("rahasia"), []byte(`{"id":"dlv_1"}`), at)
	// echo -n '1764806400.{"id":"dlv_1"}' | openssl dgst -sha256 -hmac rahasia
	const want = "t=1764806400,v1=28a1318a9ca49c545b2aebdf286f2a7488835ccbd3291357510b256299e97bfe"
	if got != want {
		t.Fatalf("header %q, want %q", got, want)
	}
}

func TestConfigValidation(t *testing.T) {
	ok := DefaultConfig()
	ok.DispatcherKeyFile = "/etc/teken/dispatcher.key"
	ok.Groups = map[string][]string{"setda": {"kendari-setda-01", "kendari-setda-02"}}
	ok.Clients = []ClientConfig{{ID: "sisumaker", KeySHA256: []string{strings.Repeat("ab", 32)}, Terminals: []string{"kendari-*", "@setda"},
		Webhooks: []EndpointConfig{{Name: "main", URL: "https://surat.example.go.id/teken", SecretFile: "/etc/teken/hook.secret"}}}}
	if err := ok.Validate(); err != nil {
		t.Fatalf("a good configuration: %v", err)
	}
	for name, change := range map[string]func(*Config){
		"listen on every address": func(c *Config) { c.Listen = ":8480" },
		"no dispatcher key":       func(c *Config) { c.DispatcherKeyFile = "" },
		"unknown store":           func(c *Config) { c.Store.Kind = "mysql" },
		"key hash in upper case":  func(c *Config) { c.Clients[0].KeySHA256 = []string{strings.Repeat("AB", 32)} },
		"two clients one key": func(c *Config) {
			c.Clients = append(c.Clients, ClientConfig{ID: "b", KeySHA256: c.Clients[0].KeySHA256, Terminals: []string{"*"}})
		},
		"unknown group":          func(c *Config) { c.Clients[0].Terminals = []string{"@dinkes"} },
		"bad terminal pattern":   func(c *Config) { c.Clients[0].Terminals = []string{"Kendari*"} },
		"webhook without secret": func(c *Config) { c.Clients[0].Webhooks[0].SecretFile = "" },
		"webhook not http":       func(c *Config) { c.Clients[0].Webhooks[0].URL = "ftp://x" },
		"backoff upside down":    func(c *Config) { c.Webhook.MaxBackoff = Duration{time.Second} },
	} {
		c := ok
		c.Clients = slices.Clone(ok.Clients)
		c.Clients[0].Webhooks = slices.Clone(ok.Clients[0].Webhooks)
		change(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestVersion2NeedsATerminalThatTakesIt(t *testing.T) {
	g := &Gateway{cfg: DefaultConfig(), signers: map[string]signer{}}
	cl := &client{id: "c", terminals: []string{"*"}}
	req := &SubmitRequest{Terminal: "kendari-setda-01", Signer: SubmitSigner{CertSHA256: strings.Repeat("ab", 32), Jabatan: "Sekretaris Daerah"},
		Title: "t", Number: "n", Sender: "s", Documents: []SubmitDocument{{ID: "a", MediaType: "text/plain", Content: []byte("x")}}}
	now := time.Now().UTC()
	// No status yet: it goes, and the terminal answers for itself.
	if j, aerr := g.buildJob(cl, req, now); aerr != nil || j.V != 2 {
		t.Fatalf("unknown terminal: %+v %v", j, aerr)
	}
	g.fleet.update(&api.Status{V: 1, Terminal: "kendari-setda-01", State: api.StateOnline, Versions: []int{1}}, now)
	if _, aerr := g.buildJob(cl, req, now); aerr == nil || aerr.code != "version_unsupported" {
		t.Fatalf("a terminal of v 1 only: %v, want version_unsupported", aerr)
	}
	g.fleet.update(&api.Status{V: 1, Terminal: "kendari-setda-01", State: api.StateOnline, Versions: []int{1, 2}}, now)
	if j, aerr := g.buildJob(cl, req, now); aerr != nil || j.V != 2 {
		t.Fatalf("a terminal of v 2: %+v %v", j, aerr)
	}
	req.Signer.Jabatan = ""
	g.fleet.update(&api.Status{V: 1, Terminal: "kendari-setda-01", State: api.StateOnline}, now)
	if j, aerr := g.buildJob(cl, req, now); aerr != nil || j.V != 1 {
		t.Fatalf("a plain letter: %+v %v", j, aerr)
	}
}
