package kiosk

import (
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"regexp"
	"slices"
)

//go:embed web
var webFiles embed.FS

// Languages are the page's languages; the first is the default.
var Languages = []string{"id", "en"}

// Catalog returns the user-visible texts of one language by message id. Each
// language has one catalogue, web/i18n/{lang}.json, shared by the page and Go.
func Catalog(lang string) (map[string]string, error) {
	if !slices.Contains(Languages, lang) {
		return nil, fmt.Errorf("no catalogue for language %q", lang)
	}
	raw, err := fs.ReadFile(webFiles, "web/i18n/"+lang+".json")
	if err != nil {
		return nil, fmt.Errorf("read catalogue %s: %w", lang, err)
	}
	var cat map[string]string
	if err := json.Unmarshal(raw, &cat); err != nil {
		return nil, fmt.Errorf("parse catalogue %s: %w", lang, err)
	}
	return cat, nil
}

var placeholder = regexp.MustCompile(`\{[a-z_]+\}`)

// Text renders one message in a language, for logs and tests.
func Text(lang string, m Message) string {
	cat, err := Catalog(lang)
	if err != nil {
		return m.Code
	}
	s, ok := cat[m.Code]
	if !ok {
		return m.Code
	}
	return placeholder.ReplaceAllStringFunc(s, func(p string) string {
		if v, ok := m.Params[p[1:len(p)-1]]; ok {
			return v
		}
		return p
	})
}
