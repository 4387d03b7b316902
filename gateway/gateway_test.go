package gateway

import (
	"maps"
	"slices"
	"strings"
	"testing"
	"time"
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
