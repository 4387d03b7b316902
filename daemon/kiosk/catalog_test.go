package kiosk

import (
	"os"
	"regexp"
	"slices"
	"testing"
)

// Both catalogues must hold the same ids with the same placeholders, so no
// screen falls back to a bare id in one language.
func TestCataloguesAgree(t *testing.T) {
	id, err := Catalog("id")
	if err != nil {
		t.Fatal(err)
	}
	en, err := Catalog("en")
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range id {
		w, ok := en[k]
		if !ok {
			t.Errorf("%s: missing in en", k)
			continue
		}
		a, b := placeholder.FindAllString(v, -1), placeholder.FindAllString(w, -1)
		slices.Sort(a)
		slices.Sort(b)
		if !slices.Equal(a, b) {
			t.Errorf("%s: placeholders differ: id %v, en %v", k, a, b)
		}
	}
	for k := range en {
		if _, ok := id[k]; !ok {
			t.Errorf("%s: missing in id", k)
		}
	}
}

// Every message id the page or the Go code uses must be in the catalogue.
func TestEveryUsedIDIsCatalogued(t *testing.T) {
	cat, err := Catalog("id")
	if err != nil {
		t.Fatal(err)
	}
	js, err := os.ReadFile("web/app.js")
	if err != nil {
		t.Fatal(err)
	}
	used := regexp.MustCompile(`\bt\("([a-z_]+)"`).FindAllSubmatch(js, -1)
	if len(used) < 20 {
		t.Fatalf("found only %d t(...) calls in app.js", len(used))
	}
	for _, m := range used {
		if _, ok := cat[string(m[1])]; !ok {
			t.Errorf("app.js uses %q, not in the catalogue", m[1])
		}
	}
	// Codes the page sets itself or compares with, as string literals.
	for _, m := range regexp.MustCompile(`"((?:err|info)_[a-z_]+)"`).FindAllSubmatch(js, -1) {
		if _, ok := cat[string(m[1])]; !ok {
			t.Errorf("app.js names code %q, not in the catalogue", m[1])
		}
	}
	for _, code := range ErrorCodes {
		if _, ok := cat[code]; !ok {
			t.Errorf("error code %q not in the catalogue", code)
		}
	}
	for _, code := range TerminalCodes {
		if _, ok := cat[code]; !ok {
			t.Errorf("terminal code %q not in the catalogue", code)
		}
	}
}

func TestText(t *testing.T) {
	got := Text("id", Message{Code: "err_wrong_pin", Params: map[string]string{"n": "2"}})
	if got != "PIN salah. Sisa percobaan: 2." {
		t.Errorf("Text = %q", got)
	}
	if got := Text("en", Message{Code: "idle_title"}); got != "Tap your token" {
		t.Errorf("Text = %q", got)
	}
}
