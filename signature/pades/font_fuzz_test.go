package pades

import (
	"crypto/x509"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzDrawBlock draws a block for arbitrary names, which come from
// certificates and from the central system: it must never panic, every
// glyph named in the stream must be in the font, and the text read back
// through /ToUnicode must hold no more characters than went in.
func FuzzDrawBlock(f *testing.F) {
	for _, s := range append(fontNames, "لا", "سلام", "بـ", "ب\u200cب", "محمد (Ali)", "e\u0301\u0323", "\u0644", "\u0644\u064e\u0627", "王", "", "\u202e", "ڠڤچ") {
		f.Add(s)
	}
	bold, err := boldFont()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) || len(s) > 512 {
			return
		}
		gs, _ := shape(bold, s)
		n := 0
		for _, g := range gs {
			if int(g.gid) >= bold.numGlyphs {
				t.Fatalf("glyph %d of %d", g.gid, bold.numGlyphs)
			}
			n += utf8.RuneCountInString(g.text)
		}
		if in := utf8.RuneCountInString(strings.ToValidUTF8(s, "")); n > 4*in {
			t.Fatalf("%d characters read back from %d", n, in)
		}
		bl, err := drawBlock(240, 80, Appearance{Name: s, NIP: s}, &x509.Certificate{}, s)
		if err != nil {
			t.Fatal(err)
		}
		u := &update{d: &document{}}
		bl.put(u, 240, 80)
	})
}
