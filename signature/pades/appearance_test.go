package pades

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestFormatTime(t *testing.T) {
	jakarta, err := time.LoadLocation("Asia/Jakarta")
	if err != nil {
		t.Fatal(err)
	}
	jayapura, err := time.LoadLocation("Asia/Jayapura")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		t    time.Time
		loc  *time.Location
		want string
	}{
		{time.Date(2026, 11, 26, 6, 5, 0, 0, time.UTC), time.FixedZone("WITA", 8*3600), "26 November 2026 14:05 WITA"},
		{time.Date(2026, 12, 31, 17, 0, 59, 0, time.UTC), jakarta, "1 Januari 2027 00:00 WIB"},
		{time.Date(2027, 8, 17, 1, 0, 0, 0, time.UTC), jayapura, "17 Agustus 2027 10:00 WIT"},
		{time.Date(2027, 5, 2, 3, 4, 0, 0, time.UTC), nil, "2 Mei 2027 03:04 UTC"},
		{time.Date(2027, 3, 9, 3, 4, 0, 0, time.UTC), time.FixedZone("", 9*3600+1800), "9 Maret 2027 12:34 UTC+09:30"},
	} {
		if got := FormatTime(tc.t, tc.loc); got != tc.want {
			t.Errorf("FormatTime(%v) = %q, want %q", tc.t, got, tc.want)
		}
	}
}

func TestBlockRect(t *testing.T) {
	three := testPDF(3)
	small := replace(t, testPDF(1), "/MediaBox [0 0 595 842]", "/MediaBox [0 0 200 100]")
	for _, tc := range []struct {
		name     string
		pdf      []byte
		a        Appearance
		page     int
		rect     [4]float64
		notFound bool
	}{
		{"default last page bottom right", three, Appearance{}, 3, [4]float64{319, 36, 559, 116}, false},
		{"explicit page and rect normalised", three, Appearance{Page: 1, Rect: [4]float64{300, 400, 100, 350}}, 1, [4]float64{100, 350, 300, 400}, false},
		{"small page", small, Appearance{}, 1, [4]float64{36, 36, 164, 64}, false},
		{"crop box", testPDFWith(2, "", "/CropBox [50 60 545 782]"), Appearance{}, 2, [4]float64{269, 96, 509, 176}, false},
		{"crop box outside media box ignored", testPDFWith(1, "", "/CropBox [1000 1000 2000 2000]"), Appearance{}, 1, [4]float64{319, 36, 559, 116}, false},
		{"page past the end", three, Appearance{Page: 4}, 0, [4]float64{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			page, rect, err := inspectBlock(tc.pdf, tc.a)
			if tc.notFound {
				if !errors.Is(err, ErrPage) {
					t.Fatalf("err %v, want ErrPage", err)
				}
				return
			}
			if err != nil || page != tc.page || rect != tc.rect {
				t.Fatalf("Inspect block = %d %v %v, want %d %v", page, rect, err, tc.page, tc.rect)
			}
			// The widget Sign writes sits exactly there.
			p := newPKI(t)
			res, _ := sign(t, p, tc.pdf, "p256", Options{Visible: &tc.a})
			if got := widgetRect(t, res.PDF, page); got != rect {
				t.Fatalf("widget /Rect %v, Inspect block %v", got, rect)
			}
		})
	}
}

// widgetRect reads back the last annotation's /Rect on page n.
func widgetRect(t *testing.T, pdf []byte, n int) [4]float64 {
	t.Helper()
	d, err := parse(pdf, newBudget(Limits{}))
	if err != nil {
		t.Fatal(err)
	}
	pages, err := d.pages()
	if err != nil {
		t.Fatal(err)
	}
	annots, err := d.arrayOf(pages[n-1].dict["Annots"], "annots")
	if err != nil || len(annots) == 0 {
		t.Fatalf("no annotations on page %d: %v", n, err)
	}
	w, err := d.dictOf(annots[len(annots)-1], "widget")
	if err != nil {
		t.Fatal(err)
	}
	r, err := d.rect(w["Rect"])
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestVisibleBlockRenders rasterises the signed page with poppler and
// reads the QR code back with zbar, so the block is checked as a person
// (or a phone) would see it.
func TestVisibleBlockRenders(t *testing.T) {
	pdftoppm := need(t, "pdftoppm", "poppler-utils")
	zbarimg := need(t, "zbarimg", "zbar-tools")
	p := newPKI(t)
	const url = "https://tte.example.go.id/verifikasi/01JDXYZ4Q7"
	res, _ := sign(t, p, testPDF(2), "p256", Options{Visible: &Appearance{VerifyURL: url}})
	prefix := filepath.Join(t.TempDir(), "page")
	if msg, err := run(t, pdftoppm, "-r", "150", "-f", "2", "-l", "2", "-png", writeTemp(t, "v.pdf", res.PDF), prefix); err != nil {
		t.Fatalf("pdftoppm: %v: %s", err, msg)
	}
	png, err := filepath.Glob(prefix + "*.png")
	if err != nil || len(png) != 1 {
		t.Fatalf("pdftoppm wrote %v", png)
	}
	out, err := run(t, zbarimg, "-q", "--raw", png[0])
	if err != nil || !strings.Contains(out, url) {
		t.Fatalf("zbarimg: %v: %q", err, out)
	}
	if _, err := os.Stat(png[0]); err != nil {
		t.Fatal(err)
	}
}

func TestAppearanceText(t *testing.T) {
	p := newPKI(t)
	_, cert := p.official(t, "p256")
	wita := time.FixedZone("WITA", 8*3600)
	when := FormatTime(time.Date(2026, 11, 26, 6, 5, 0, 0, time.UTC), wita)
	for _, tc := range []struct {
		name string
		a    Appearance
		want []string
	}{
		{"from certificate", Appearance{}, []string{Caption, "(Dr. Andi Wijaya, M.Si. \\(p256\\))", "(NIP. 198001012005011001)", "(26 November 2026 14:05 WITA)"}},
		{"given name and nip", Appearance{Name: "Ir. Siti Rahmah", NIP: "197503152000032002"}, []string{"(Ir. Siti Rahmah)", "(NIP. 197503152000032002)"}},
		{"non latin replaced", Appearance{Name: "Ñoño 王"}, []string{"(\xd1o\xf1o ?)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := appearanceStream(240, 80, tc.a, cert, when)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !strings.Contains(string(s), w) {
					t.Errorf("stream lacks %q:\n%s", w, s)
				}
			}
		})
	}
	// A long name shrinks rather than overflowing the block.
	long := Appearance{Name: strings.Repeat("Panjang ", 20)}
	s, err := appearanceStream(240, 80, long, cert, when)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(s), "/F2 9 Tf") {
		t.Errorf("long name kept its full size:\n%s", s)
	}
}
