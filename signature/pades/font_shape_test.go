package pades

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"golang.org/x/text/unicode/norm"
)

func TestShape(t *testing.T) {
	f, err := sansFont()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, in string
		// draw is what is drawn, left to right; text what each glyph
		// stands for, joined with '|'.
		draw, text string
		covered    int
	}{
		{"latin", "Ani", "Ani", "A|n|i", 0},
		{"vietnamese composed", "Nguyễn", "Nguyễn", "N|g|u|y|ễ|n", 1},
		{"vietnamese decomposed", norm.NFD.String("Nguyễn"), "Nguyễn", "N|g|u|y|ễ|n", 1},
		{"transliteration", "Raḥmān", "Raḥmān", "R|a|ḥ|m|ā|n", 2},
		// Meem initial, hah medial, meem medial, dal final, drawn from
		// the right.
		{"arabic joined", "محمد", "\uFEAA\uFEE4\uFEA4\uFEE3", "د|م|ح|م", 4},
		// Dal does not join the letter after it: alef stays isolated.
		{"right-joining", "دا", "\u0627\u062F", "ا|د", 2},
		{"lam-alef isolated", "لا", "\uFEFB", "لا", 2},
		{"lam-alef final", "سلام", "\u0645\uFEFC\uFEB3", "م|لا|س", 4},
		{"words reversed as a whole", "بن علي", "\uFEF2\uFEE0\uFECB \uFEE6\uFE91", "ي|ل|ع| |ن|ب", 5},
		{"arabic inside latin", "Dr. محمد", "Dr. \uFEAA\uFEE4\uFEA4\uFEE3", "D|r|.| |د|م|ح|م", 4},
		{"latin inside arabic", "محمد (Ali)", "(Ali) \uFEAA\uFEE4\uFEA4\uFEE3", "(|A|l|i|)| |د|م|ح|م", 4},
		{"tatweel joins", "بـ", "\u0640\uFE91", "ـ|ب", 2},
		{"zwnj breaks the join", "ب\u200cب", "\u0628\u0628", "ب|ب", 2},
		{"missing glyph", "Li 王", "Li ?", "L|i| |?", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gs, covered := shape(f, tc.in)
			var want []uint16
			for _, r := range tc.draw {
				want = append(want, f.cmap[r])
			}
			var got []uint16
			var text []string
			for _, g := range gs {
				got = append(got, g.gid)
				text = append(text, g.text)
			}
			if len(got) != len(want) {
				t.Fatalf("%d glyphs %q, want %d", len(got), text, len(want))
			}
			for i := range got {
				if got[i] != want[i] {
					t.Errorf("glyph %d is %d, want %d (%U)", i, got[i], want[i], []rune(tc.draw)[i])
				}
			}
			if s := strings.Join(text, "|"); s != tc.text {
				t.Errorf("text %q, want %q", s, tc.text)
			}
			if covered != tc.covered {
				t.Errorf("covered %d, want %d", covered, tc.covered)
			}
		})
	}
}

// TestSubset reads a subset back: the glyphs shown come first in the
// order given with their outlines and metrics, a composite's components
// follow with its references renumbered, and the font's checksum
// adjustment holds.
func TestSubset(t *testing.T) {
	f, err := boldFont()
	if err != nil {
		t.Fatal(err)
	}
	gs, _ := shape(f, "Nguyễn Văn محمد عبدالله")
	e := newEmbeddedFont(f, "F4")
	e.show(gs)
	sub, order := f.subset(e.order, e.chars)
	if got := checksum(sub); got != 0xB1B0AFBA {
		t.Errorf("font checksum %#x, want 0xB1B0AFBA", got)
	}
	if !slices.Equal(order[:len(e.order)], e.order) {
		t.Fatalf("order %v does not start with %v", order, e.order)
	}
	s, err := parseTrueType(sub)
	if err != nil {
		t.Fatal(err)
	}
	if s.numGlyphs != len(order) || s.unitsPerEm != f.unitsPerEm {
		t.Fatalf("subset has %d glyphs at %d units, want %d at %d", s.numGlyphs, s.unitsPerEm, len(order), f.unitsPerEm)
	}
	composite := false
	for i, g := range order {
		id := uint16(i)
		if s.advance[id] != f.advance[g] || s.lsb(id) != f.lsb(g) {
			t.Errorf("glyph %d (was %d): metrics %d/%d, want %d/%d", id, g, s.advance[id], s.lsb(id), f.advance[g], f.lsb(g))
		}
		comps := f.components(g)
		if len(comps) > 0 && i < len(e.order) {
			composite = true
		}
		var back []uint16
		for _, c := range s.components(id) {
			back = append(back, order[c])
		}
		if !slices.Equal(back, comps) {
			t.Errorf("glyph %d (was %d): components %v, want %v", id, g, back, comps)
		}
		if len(comps) == 0 && !bytes.Equal(bytes.TrimRight(s.glyph(id), "\x00"), bytes.TrimRight(f.glyph(g), "\x00")) {
			t.Errorf("glyph %d (was %d): outline differs", id, g)
		}
	}
	if !composite {
		t.Error("no composite glyph among those shown; the test does not show components are kept")
	}
	for r, g := range e.chars {
		if s.cmap[r] != g {
			t.Errorf("subset cmap maps %q to %d, want %d", r, s.cmap[r], g)
		}
	}
	if len(sub) > 16<<10 {
		t.Errorf("subset of %d glyphs is %d bytes", len(order), len(sub))
	}
}

func TestParseTrueTypeRefusesTruncated(t *testing.T) {
	b, err := fontFiles.ReadFile("fonts/DejaVuSans.ttf")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{0, 4, 12, 100, 1000, len(b) / 2} {
		if _, err := parseTrueType(b[:n]); err == nil {
			t.Errorf("%d bytes parsed", n)
		}
	}
}
