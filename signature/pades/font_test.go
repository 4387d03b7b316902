package pades

import (
	"bytes"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/text/unicode/norm"
)

// The names of the tests: Vietnamese, a transliterated Arabic name, a
// name in Jawi, and one the standard fonts draw.
var fontNames = []string{
	"Nguyễn Văn Thành",
	"Muḥammad ʿAbd al-Raḥmān",
	"محمد بن عبدالله",
	"Dr. Siti Rahmah, S.H.",
}

// blocksPDF is a one-page letter with a signature block for each name
// drawn on the page itself, one above the other, so that poppler reads
// the blocks as page text.
func blocksPDF(t *testing.T, cert *x509.Certificate, names []string) []byte {
	t.Helper()
	d, pages, _, _, err := open(testPDF(1), newBudget(Limits{}))
	if err != nil {
		t.Fatal(err)
	}
	pg := pages[0]
	u := newUpdate(d)
	when := FormatTime(time.Date(2026, 11, 26, 6, 5, 0, 0, time.UTC), time.FixedZone("WITA", 8*3600))
	var content bytes.Buffer
	xobj := dict{}
	for i, n := range names {
		bl, err := drawBlock(DefaultWidth, DefaultHeight, Appearance{Name: n, NIP: "198001012005011001"}, cert, when)
		if err != nil {
			t.Fatal(err)
		}
		key := name(fmt.Sprintf("B%d", i))
		xobj[key] = bl.put(u, DefaultWidth, DefaultHeight)
		fmt.Fprintf(&content, "q 1 0 0 1 300 %d cm /%s Do Q\n", 650-100*i, key)
	}
	cnum := u.alloc()
	u.putStream(cnum, dict{}, content.Bytes())
	res, err := d.dictOf(pg.dict["Resources"], "resources")
	if err != nil {
		t.Fatal(err)
	}
	res = clone(res)
	res["XObject"] = xobj
	pd := clone(pg.dict)
	pd["Resources"] = res
	pd["Contents"] = array{pd["Contents"], ref{cnum, 0}}
	u.put(pg.ref.num, pg.ref.gen, pd)
	return u.finish()
}

// TestEmbeddedFontBlocks reads the blocks back as a reader would: the
// package's own parser and verifier, qpdf, and poppler's font list and
// text extraction.
func TestEmbeddedFontBlocks(t *testing.T) {
	pdftotext := need(t, "pdftotext", "poppler-utils")
	pdffonts := need(t, "pdffonts", "poppler-utils")
	p := newPKI(t)
	_, cert := p.official(t, "p256")
	pdf := blocksPDF(t, cert, fontNames)
	qpdfCheck(t, pdf)
	if err := check(pdf); err != nil {
		t.Fatalf("Inspect: %v", err)
	}
	res, _ := sign(t, p, pdf, "p256", Options{})
	wantStatus(t, verify(t, res.PDF, VerifyOptions{Roots: roots(p)}), Valid)
	path := writeTemp(t, "blocks.pdf", res.PDF)
	if out := os.Getenv("TEKEN_FONT_PDF"); out != "" {
		// For looking at the page: pdftoppm -r 72 -png "$TEKEN_FONT_PDF".
		if err := os.WriteFile(out, res.PDF, 0o600); err != nil {
			t.Fatal(err)
		}
	}

	// Three blocks need the bold face, each its own subset; none the
	// regular face, whose lines are all Latin-1.
	fonts, err := run(t, pdffonts, path)
	if err != nil {
		t.Fatalf("pdffonts: %v\n%s", err, fonts)
	}
	row := regexp.MustCompile(`(?m)^([A-Z]{6})\+DejaVuSans-Bold +CID TrueType +Identity-H +yes +yes +yes `)
	if got := row.FindAllStringSubmatch(fonts, -1); len(got) != 3 {
		t.Errorf("pdffonts lists %d embedded subsets, want 3:\n%s", len(got), fonts)
	} else if got[0][1] == got[1][1] {
		t.Errorf("two different subsets share the tag %s", got[0][1])
	}

	text, err := run(t, pdftotext, "-enc", "UTF-8", path, "-")
	if err != nil {
		t.Fatalf("pdftotext: %v\n%s", err, text)
	}
	// poppler writes a right-to-left line in logical order between
	// RIGHT-TO-LEFT EMBEDDING and POP DIRECTIONAL FORMATTING.
	plain := strings.NewReplacer("\u202b", "", "\u202c", "").Replace(text)
	for _, n := range fontNames {
		if !strings.Contains(plain, n+"\n") {
			t.Errorf("pdftotext lacks the line %q:\n%s", n, text)
		}
	}
	if !strings.Contains(text, "\u202b"+fontNames[2]+"\u202c") {
		t.Errorf("the Jawi name is not read as one right-to-left run:\n%q", text)
	}
	if strings.Contains(text, "?") {
		t.Errorf("pdftotext shows '?':\n%s", text)
	}
}

// TestVisibleBlockGlyphs renders a page of blocks and checks that the
// names are drawn, not left blank: every block's name line has ink.
func TestVisibleBlockGlyphs(t *testing.T) {
	pdftoppm := need(t, "pdftoppm", "poppler-utils")
	p := newPKI(t)
	_, cert := p.official(t, "p256")
	pdf := blocksPDF(t, cert, fontNames)
	prefix := filepath.Join(t.TempDir(), "page")
	// Grey PGM: one byte a pixel after a three-line header.
	if msg, err := run(t, pdftoppm, "-r", "72", "-gray", writeTemp(t, "b.pdf", pdf), prefix); err != nil {
		t.Fatalf("pdftoppm: %v: %s", err, msg)
	}
	img, err := os.ReadFile(prefix + "-1.pgm")
	if err != nil {
		t.Fatal(err)
	}
	var magic string
	var w, h, maxv, hdr int
	if _, err := fmt.Sscan(string(img), &magic, &w, &h, &maxv); err != nil || magic != "P5" {
		t.Fatalf("pgm header %q: %v", magic, err)
	}
	for n := 0; n < 4; hdr++ {
		if img[hdr] == '\n' || img[hdr] == ' ' {
			n++
		}
	}
	pix := img[hdr:]
	if len(pix) < w*h {
		t.Fatalf("pgm has %d pixels, want %d", len(pix), w*h)
	}
	for i := range fontNames {
		// The name line: block at y = 650-100i, 80 high; its second line
		// sits 20 to 38 points under the top, from x = 306.
		top := 842 - (650 - 100*i + 80)
		dark := 0
		for y := top + 20; y < top+38; y++ {
			for x := 306; x < 500; x++ {
				if pix[y*w+x] < 128 {
					dark++
				}
			}
		}
		if dark < 50 {
			t.Errorf("block %d (%s): %d dark pixels on the name line", i, fontNames[i], dark)
		}
	}
}

func TestDrawBlockFonts(t *testing.T) {
	p := newPKI(t)
	_, cert := p.official(t, "p256")
	for _, tc := range []struct {
		name  string
		who   string
		fonts []name
		want  string
	}{
		{"latin-1 keeps helvetica", "Ir. Siti Rahmah", nil, "/F2 9 Tf 1 0 0 1 6 44.25 Tm (Ir. Siti Rahmah) Tj"},
		{"decomposed latin-1 composed", "Jose\u0301 Nun\u0303ez", nil, "(Jos\xe9 Nu\xf1ez) Tj"},
		{"no glyph anywhere", "王", nil, "(?) Tj"},
		{"vietnamese", "Nguyễn", []name{"F4"}, "/F4 9 Tf"},
		{"decomposed vietnamese", norm.NFD.String("Nguyễn"), []name{"F4"}, "/F4 9 Tf"},
		{"jawi", "محمد", []name{"F4"}, "/F4 9 Tf"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bl, err := drawBlock(240, 80, Appearance{Name: tc.who, NIP: "1"}, cert, "1 Mei 2027 10:00 WIB")
			if err != nil {
				t.Fatal(err)
			}
			var got []name
			for _, f := range bl.fonts {
				got = append(got, f.res)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.fonts) {
				t.Errorf("fonts %v, want %v", got, tc.fonts)
			}
			if !bytes.Contains(bl.content, []byte(tc.want)) {
				t.Errorf("stream lacks %q:\n%s", tc.want, bl.content)
			}
			if tc.fonts == nil {
				legacy, err := appearanceStream(240, 80, Appearance{Name: tc.who, NIP: "1"}, cert, "1 Mei 2027 10:00 WIB")
				if err != nil || !bytes.Equal(legacy, bl.content) {
					t.Errorf("a block the standard fonts draw differs from appearanceStream's: %v\n%s\n%s", err, legacy, bl.content)
				}
			}
		})
	}
	// A regular line gets the regular face, under its own name.
	ef, gs, err := embeddedFor(true, false, "Trần Thị Hương", map[bool]*embeddedFont{})
	if err != nil || ef == nil || ef.res != "F3" || ef.f.psName != "DejaVuSans" || len(gs) != len("Tran Thi Huong") {
		t.Errorf("regular line: %v %v %d glyphs", ef, err, len(gs))
	}
	// A long name shrinks by the embedded font's own widths.
	bl, err := drawBlock(240, 80, Appearance{Name: strings.Repeat("Nguyễn ", 8)}, cert, "")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`/F4 ([0-9.]+) Tf`).FindSubmatch(bl.content)
	if m == nil {
		t.Fatalf("no F4 line:\n%s", bl.content)
	}
	var size float64
	fmt.Sscanf(string(m[1]), "%g", &size)
	f, err := boldFont()
	if err != nil {
		t.Fatal(err)
	}
	gs, _ = shape(f, strings.Repeat("Nguyễn ", 8))
	ef = newEmbeddedFont(f, "F4")
	if w := ef.width(gs) / 1000 * size; size >= 9 || w > 240-12+0.01 {
		t.Errorf("long name at %g points is %g wide, block has 228", size, w)
	}
}

// BenchmarkDrawBlockEmbedded draws and writes a block whose name needs
// the embedded font: shaping, the subset and its compression.
func BenchmarkDrawBlockEmbedded(b *testing.B) {
	cert := &x509.Certificate{}
	if _, err := boldFont(); err != nil {
		b.Fatal(err)
	}
	for _, n := range fontNames[:3] {
		b.Run(n, func(b *testing.B) {
			for b.Loop() {
				bl, err := drawBlock(240, 80, Appearance{Name: n, NIP: "198001012005011001"}, cert, "26 November 2026 14:05 WITA")
				if err != nil {
					b.Fatal(err)
				}
				bl.put(&update{d: &document{}}, 240, 80)
			}
		})
	}
}

func BenchmarkLoadFont(b *testing.B) {
	for b.Loop() {
		if _, err := loadFont("fonts/DejaVuSans-Bold.ttf", "DejaVuSans-Bold"); err != nil {
			b.Fatal(err)
		}
	}
}
