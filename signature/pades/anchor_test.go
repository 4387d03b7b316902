package pades

import (
	"bytes"
	"errors"
	"fmt"
	"html"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tekenid/teken/internal/testenv"
)

// The letters under testdata/anchor are written by gen.py there (see its
// header to regenerate them).
func anchorFile(t testing.TB, file string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "anchor", file))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// anchorCases are anchors in the generated letters, with where they are.
// want is the rect FindAnchor found when poppler's word boxes confirmed
// it (TestFindAnchorMatchesPoppler checks them again where poppler is
// installed); origin is the first glyph's origin.
var anchorCases = []struct {
	name   string
	file   string
	anchor Anchor
	page   int
	rotate int
	want   [4]float64
	origin [2]float64
}{
	{"caret on page 2", "letter.pdf", Anchor{Text: "^"}, 2, 0, [4]float64{380, 657.102, 386.566, 670.052}, [2]float64{380, 660}},
	{"second caret, glyph by glyph", "letter.pdf", Anchor{Text: "^", Occurrence: 2}, 3, 0, [4]float64{335.16, 597.516, 340.788, 608.616}, [2]float64{335.16, 600}},
	{"placeholder with character spacing", "letter.pdf", Anchor{Text: "${ttd_kepala}"}, 3, 0, [4]float64{153.591, 684.316, 246.951, 695.416}, [2]float64{153.591, 686.8}},
	{"placeholder split by a font change", "letter.pdf", Anchor{Text: "${ttd_kepala}", Occurrence: 2}, 3, 0, [4]float64{127.36, 647.516, 197.416, 658.616}, [2]float64{127.36, 650}},
	{"words placed glyph by glyph", "letter.pdf", Anchor{Text: "tanda ^  di\tsini"}, 3, 0, [4]float64{300, 597.516, 377.196, 608.616}, [2]float64{300, 600}},
	{"white space run", "letter.pdf", Anchor{Text: " Kepala \n Dinas, "}, 2, 0, [4]float64{350, 697.723, 418.475, 707.898}, [2]float64{350, 700}},
	{"only page 3", "letter.pdf", Anchor{Text: "^", Page: 3}, 3, 0, [4]float64{335.16, 597.516, 340.788, 608.616}, [2]float64{335.16, 600}},
	{"rotated matrix on /Rotate 90", "rotated.pdf", Anchor{Text: "${ttd_kepala}"}, 1, 90, [4]float64{436.66, 481.384, 447.76, 551.44}, [2]float64{445.276, 481.384}},
	{"plain text on /Rotate 270", "rotated.pdf", Anchor{Text: "^"}, 2, 270, [4]float64{180.04, 297.516, 185.668, 308.616}, [2]float64{180.04, 300}},
	{"form XObject", "form.pdf", Anchor{Text: "#"}, 1, 0, [4]float64{340.02, 211.895, 348.36, 225.77}, [2]float64{340.02, 215}},
	{"split by a TJ kern, inherited /Rotate 180", "handmade.pdf", Anchor{Text: "${ttd_kepala}"}, 1, 180, [4]float64{108.696, 647.516, 179.112, 658.616}, [2]float64{108.696, 650}},
	{"split over two Tj", "handmade.pdf", Anchor{Text: "${ttd_kepala}", Occurrence: 2}, 1, 180, [4]float64{110.676, 597.516, 180.732, 608.616}, [2]float64{110.676, 600}},
	{"large kern is a space", "handmade.pdf", Anchor{Text: "Kepala Dinas"}, 1, 180, [4]float64{72, 547.516, 144.828, 558.616}, [2]float64{72, 550}},
	{"separate text objects under cm", "handmade.pdf", Anchor{Text: "NIP ^"}, 1, 180, [4]float64{72, 497.516, 101.628, 508.616}, [2]float64{72, 500}},
	{"TrueType subset through ToUnicode", "ttf.pdf", Anchor{Text: "${ttd_kepala}"}, 1, 0, [4]float64{94.602, 677.357, 173.363, 688.357}, [2]float64{94.602, 680}},
	{"non-ASCII text", "ttf.pdf", Anchor{Text: "ttd. ${ttd_kepala} — é"}, 1, 0, [4]float64{72, 677.357, 198.124, 688.357}, [2]float64{72, 680}},
	{"Type0 Identity-H with ToUnicode", "handmade.pdf", Anchor{Text: "${ttd_kepala}", Occurrence: 3}, 2, 0, [4]float64{161.656, 396.696, 261.896, 412.992}, [2]float64{161.656, 400}},
}

func near(a, b []float64, tol float64) bool {
	for i := range a {
		if math.Abs(a[i]-b[i]) > tol {
			return false
		}
	}
	return true
}

func TestFindAnchor(t *testing.T) {
	for _, c := range anchorCases {
		t.Run(c.name, func(t *testing.T) {
			f, err := FindAnchor(anchorFile(t, c.file), c.anchor, Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if f.Page != c.page || f.Rotate != c.rotate {
				t.Fatalf("page %d rotate %d, want page %d rotate %d", f.Page, f.Rotate, c.page, c.rotate)
			}
			if !near(f.Rect[:], c.want[:], 0.01) || !near(f.Origin[:], c.origin[:], 0.01) {
				t.Errorf("rect %v origin %v, want %v %v", f.Rect, f.Origin, c.want, c.origin)
			}
		})
	}
}

// popplerWord is a word box of pdftotext -bbox, in default user space.
type popplerWord struct {
	text string
	box  [4]float64
}

var (
	popplerPage = regexp.MustCompile(`<page width="([0-9.]+)" height="([0-9.]+)">`)
	popplerBox  = regexp.MustCompile(`<word xMin="([0-9.]+)" yMin="([0-9.]+)" xMax="([0-9.]+)" yMax="([0-9.]+)">([^<]*)</word>`)
)

// popplerWords runs pdftotext on one page and turns its boxes, which are
// top-down, into default user space. A rotated page is first set
// upright with qpdf, so that the boxes are in the space of its content.
func popplerWords(t *testing.T, tool, file string, pg, rotate int) []popplerWord {
	t.Helper()
	if rotate != 0 {
		qpdf := testenv.LookPath(t, "qpdf")
		upright := filepath.Join(t.TempDir(), "upright.pdf")
		if out, err := run(t, qpdf, "--rotate=0", file, upright); err != nil {
			t.Fatalf("qpdf: %v: %s", err, out)
		}
		file = upright
	}
	out, err := run(t, tool, "-bbox", "-f", strconv.Itoa(pg), "-l", strconv.Itoa(pg), file, "-")
	if err != nil {
		t.Fatalf("pdftotext: %v: %s", err, out)
	}
	m := popplerPage.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("pdftotext: no page in %s", out)
	}
	// The test letters' MediaBoxes start at 0 0.
	h, _ := strconv.ParseFloat(m[2], 64)
	toUser := func(X, Y float64) (float64, float64) { return X, h - Y }
	var words []popplerWord
	for _, m := range popplerBox.FindAllStringSubmatch(out, -1) {
		var v [4]float64
		for i := range v {
			v[i], _ = strconv.ParseFloat(m[i+1], 64)
		}
		x0, y0 := toUser(v[0], v[1])
		x1, y1 := toUser(v[2], v[3])
		words = append(words, popplerWord{html.UnescapeString(m[5]), [4]float64{min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)}})
	}
	return words
}

// TestFindAnchorMatchesPoppler compares every found rect with the box
// poppler gives the same words: the n-th run of words on the page that
// spells the anchor, n counted as FindAnchor counts on that page.
func TestFindAnchorMatchesPoppler(t *testing.T) {
	tool := testenv.LookPath(t, "pdftotext")
	for _, c := range anchorCases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join("testdata", "anchor", c.file)
			pdf := anchorFile(t, c.file)
			f, err := FindAnchor(pdf, c.anchor, Limits{})
			if err != nil {
				t.Fatal(err)
			}
			// Which occurrence on its page this one is.
			nth := 0
			for k := 1; ; k++ {
				g, err := FindAnchor(pdf, Anchor{Text: c.anchor.Text, Page: f.Page, Occurrence: k}, Limits{})
				if err != nil {
					t.Fatalf("occurrence %d on page %d: %v", k, f.Page, err)
				}
				if g.Rect == f.Rect {
					nth = k
					break
				}
			}
			fields := strings.Fields(c.anchor.Text)
			words := popplerWords(t, tool, path, f.Page, c.rotate)
			seen := 0
			for i := 0; i+len(fields) <= len(words); i++ {
				ok := true
				for k, fw := range fields {
					ok = ok && words[i+k].text == fw
				}
				if !ok {
					continue
				}
				if seen++; seen < nth {
					continue
				}
				box := words[i].box
				for _, w := range words[i+1 : i+len(fields)] {
					box = [4]float64{min(box[0], w.box[0]), min(box[1], w.box[1]), max(box[2], w.box[2]), max(box[3], w.box[3])}
				}
				if !near(f.Rect[:], box[:], 1.5) {
					t.Fatalf("rect %v, poppler's words %q make %v", f.Rect, fields, box)
				}
				return
			}
			t.Fatalf("poppler has no occurrence %d of %q on page %d: %v", nth, fields, f.Page, words)
		})
	}
}

func TestFindAnchorOffset(t *testing.T) {
	f, err := FindAnchor(anchorFile(t, "letter.pdf"), Anchor{Text: "^", Offset: [2]float64{-20, -90}}, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if want := [2]float64{360, 570}; !near(f.Origin[:], want[:], 0.01) {
		t.Fatalf("origin %v, want %v", f.Origin, want)
	}
}

func TestFindAnchorErrors(t *testing.T) {
	letter := anchorFile(t, "letter.pdf")
	for _, c := range []struct {
		name string
		a    Anchor
		want error
	}{
		{"no text", Anchor{Text: " \t"}, ErrBadAnchor},
		{"negative occurrence", Anchor{Text: "^", Occurrence: -1}, ErrBadAnchor},
		{"no such page", Anchor{Text: "^", Page: 4}, ErrPage},
		{"absent", Anchor{Text: "${ttd_sekretaris}"}, ErrAnchorNotFound},
		{"third caret", Anchor{Text: "^", Occurrence: 3}, ErrAnchorNotFound},
		{"not on page 1", Anchor{Text: "^", Page: 1}, ErrAnchorNotFound},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := FindAnchor(letter, c.a, Limits{})
			if !errors.Is(err, c.want) {
				t.Fatalf("error %v, want %v", err, c.want)
			}
		})
	}
	_, err := FindAnchor(letter, Anchor{Text: "^", Occurrence: 3}, Limits{})
	var nf *AnchorNotFoundError
	if !errors.As(err, &nf) || nf.Found != 2 || nf.Occurrence != 3 {
		t.Fatalf("error %v, want 2 of 3 found", err)
	}
}

// anchorPDF is a one-page PDF whose page draws content, with Helvetica
// as /F1, extra entries in the page (object 3) and extra objects from 5
// on.
func anchorPDF(content, pageExtra string, extra ...string) []byte {
	var b bytes.Buffer
	var offs []int
	obj := func(body string) {
		offs = append(offs, b.Len())
		fmt.Fprintf(&b, "%d 0 obj\n%s\nendobj\n", len(offs), body)
	}
	b.WriteString("%PDF-1.7\n")
	obj("<< /Type /Catalog /Pages 2 0 R >>")
	obj("<< /Type /Pages /Kids [3 0 R] /Count 1 /MediaBox [0 0 595 842] >>")
	obj("<< /Type /Page /Parent 2 0 R /Resources << /Font << /F1 << /Type /Font /Subtype /Type1 /BaseFont /Helvetica >> >> >> /Contents 4 0 R " + pageExtra + " >>")
	obj(fmt.Sprintf("<< /Length %d >>\nstream\n%s\nendstream", len(content), content))
	for _, e := range extra {
		obj(e)
	}
	xref := b.Len()
	fmt.Fprintf(&b, "xref\n0 %d\n0000000000 65535 f \n", len(offs)+1)
	for _, o := range offs {
		fmt.Fprintf(&b, "%010d 00000 n \n", o)
	}
	fmt.Fprintf(&b, "trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n", len(offs)+1, xref)
	return b.Bytes()
}

// TestFindAnchorHostileContent: content that loops, nests or floods ends
// in a typed error, quickly.
func TestFindAnchorHostileContent(t *testing.T) {
	selfForm := "<< /Type /XObject /Subtype /Form /BBox [0 0 10 10] /Resources << /XObject << /X 5 0 R >> >> /Length 5 >>\nstream\n/X Do\nendstream"
	for _, c := range []struct {
		name, content, page string
		extra               []string
		lim                 Limits
		want                error
	}{
		{"form draws itself", "/X Do", "/Resources << /XObject << /X 5 0 R >> >>", []string{selfForm}, Limits{}, ErrMalformed},
		{"operator flood", strings.Repeat("q Q ", 1<<17), "", nil, Limits{MaxParsedBytes: 1 << 20}, ErrTooComplex},
		{"glyph flood", "BT /F1 1 Tf " + strings.Repeat("("+strings.Repeat("a", 1000)+") Tj ", 300) + "ET", "", nil, Limits{}, ErrTooComplex},
		{"unterminated string", "BT /F1 12 Tf (^", "", nil, Limits{}, ErrMalformed},
		{"ToUnicode of open parentheses", "BT /F2 12 Tf (^) Tj ET", "/Resources << /Font << /F2 5 0 R >> >>", []string{
			"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /ToUnicode 6 0 R >>",
			fmt.Sprintf("<< /Length %d >>\nstream\n%s\nendstream", 200000, strings.Repeat("(", 200000)),
		}, Limits{}, ErrTooComplex},
		{"unknown filter", "", "/Contents 5 0 R", []string{"<< /Length 2 /Filter /LZWDecode >>\nstream\nxx\nendstream"}, Limits{}, ErrMalformed},
	} {
		t.Run(c.name, func(t *testing.T) {
			pdf := anchorPDF(c.content, c.page, c.extra...)
			_, err := FindAnchor(pdf, Anchor{Text: "^"}, c.lim)
			if !errors.Is(err, c.want) {
				t.Fatalf("error %v, want %v", err, c.want)
			}
		})
	}
}

// TestFindAnchorTextState checks the text state operators against
// positions worked out by hand from the Helvetica AFM (a, b 556; ^ 469;
// space 278 per 1000 em).
func TestFindAnchorTextState(t *testing.T) {
	for _, c := range []struct {
		name, content string
		origin        [2]float64
		x1            float64 // right edge of the box
	}{
		{"quote moves by TL", "BT /F1 10 Tf 20 TL 100 700 Td (a) ' (^) ' ET", [2]float64{100, 660}, 104.69},
		{"double quote sets Tw and Tc", "BT /F1 10 Tf 20 TL 100 700 Td 5 1 (a ^) \" ET", [2]float64{100 + 5.56 + 1 + 2.78 + 5 + 1, 680}, 100 + 5.56 + 1 + 2.78 + 5 + 1 + 4.69},
		{"TD sets the leading", "BT /F1 10 Tf 100 700 TD 0 -30 TD T* (^) Tj ET", [2]float64{100, 640}, 104.69},
		{"Tz scales advances", "BT /F1 10 Tf 50 Tz 100 600 Td (ab^) Tj ET", [2]float64{100 + 5.56, 600}, 100 + 5.56 + 2.345},
		{"Ts raises the baseline", "BT /F1 10 Tf 3 Ts 100 600 Td (^) Tj ET", [2]float64{100, 603}, 104.69},
		{"TJ kern moves right", "BT /F1 10 Tf 100 600 Td [(a) -1000 (^)] TJ ET", [2]float64{100 + 5.56 + 10, 600}, 100 + 5.56 + 10 + 4.69},
		{"overstruck for bold counts once", "BT /F1 10 Tf 100 600 Td (^) Tj ET BT /F1 10 Tf 100.3 600 Td (^) Tj ET BT /F1 10 Tf 100 580 Td (x ^) Tj ET", [2]float64{100, 600}, 104.69},
		{"Q restores the matrix", "q 2 0 0 2 0 0 cm Q BT /F1 10 Tf 100 600 Td (^) Tj ET", [2]float64{100, 600}, 104.69},
		{"scaled by cm", "q 2 0 0 2 10 20 cm BT /F1 10 Tf 100 600 Td (^) Tj ET Q", [2]float64{210, 1220}, 219.38},
	} {
		t.Run(c.name, func(t *testing.T) {
			f, err := FindAnchor(anchorPDF(c.content, ""), Anchor{Text: "^"}, Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if !near(f.Origin[:], c.origin[:], 0.01) || math.Abs(f.Rect[2]-c.x1) > 0.01 {
				t.Fatalf("origin %v rect %v, want origin %v and x1 %g", f.Origin, f.Rect, c.origin, c.x1)
			}
		})
	}
}

// TestFindAnchorEncodings reads text through /Differences, MacRoman and a
// simple font's ToUnicode CMap.
func TestFindAnchorEncodings(t *testing.T) {
	tounicode := "/CIDInit /ProcSet findresource begin 1 begincodespacerange <00> <FF> endcodespacerange\n" +
		"1 beginbfrange <41> <43> <0061> endbfrange 2 beginbfchar <01> <0024> <02> <007B007D> endbfchar\n" +
		"1 beginbfrange <10> <11> [<005E> <2026>] endbfrange endcmap"
	for _, c := range []struct {
		name, font, content, anchor string
		extra                       []string
	}{
		{"differences", "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding << /BaseEncoding /WinAnsiEncoding /Differences [1 /dollar /braceleft /t /d /underscore /k /e /p /a /l /braceright 94 /uni005E] >> >>",
			"<01020303040506070809 0A090B> Tj ( \136) Tj", "${ttd_kepala} ^", nil},
		{"mac roman", "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /MacRomanEncoding >>", "(Sekretariat d\216p\212t) Tj", "Sekretariat dépät", nil},
		{"standard quotes", "<< /Type /Font /Subtype /Type1 /BaseFont /Times-Roman >>", "(\140ttd\047) Tj", "\u2018ttd\u2019", nil},
		{"simple font ToUnicode", "<< /Type /Font /Subtype /TrueType /BaseFont /ABCDEF+Arial /FirstChar 1 /LastChar 67 /Widths [500 600] /ToUnicode 6 0 R >>",
			"<0102414243101120> Tj", "${}abc^\u2026 ", []string{fmt.Sprintf("<< /Length %d >>\nstream\n%s\nendstream", len(tounicode), tounicode)}},
	} {
		t.Run(c.name, func(t *testing.T) {
			content := "BT /F2 12 Tf 72 700 Td " + c.content + " ET"
			pdf := anchorPDF(content, "/Resources << /Font << /F2 5 0 R >> >>", append([]string{c.font}, c.extra...)...)
			f, err := FindAnchor(pdf, Anchor{Text: c.anchor}, Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if f.Page != 1 || f.Origin != [2]float64{72, 700} {
				t.Fatalf("found %+v, want origin 72 700", f)
			}
		})
	}
}

// TestFindAnchorObjectStreams: the same anchors in the handmade letter
// rewritten by qpdf into object and cross-reference streams.
func TestFindAnchorObjectStreams(t *testing.T) {
	qpdf := testenv.LookPath(t, "qpdf")
	out := filepath.Join(t.TempDir(), "objstm.pdf")
	if msg, err := run(t, qpdf, "--object-streams=generate", "--compress-streams=y", filepath.Join("testdata", "anchor", "handmade.pdf"), out); err != nil {
		t.Fatalf("qpdf: %v: %s", err, msg)
	}
	pdf, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	orig := anchorFile(t, "handmade.pdf")
	for occ := 1; occ <= 3; occ++ {
		a := Anchor{Text: "${ttd_kepala}", Occurrence: occ}
		want, err1 := FindAnchor(orig, a, Limits{})
		got, err2 := FindAnchor(pdf, a, Limits{})
		if err1 != nil || err2 != nil || got != want {
			t.Fatalf("occurrence %d: %+v %v, want %+v %v", occ, got, err2, want, err1)
		}
	}
}

// TestFindAnchorOverstruck: a caret drawn twice for bold is one
// occurrence; the next is on the line below.
func TestFindAnchorOverstruck(t *testing.T) {
	pdf := anchorPDF("BT /F1 10 Tf 100 600 Td (^) Tj ET BT /F1 10 Tf 100.3 600 Td (^) Tj ET BT /F1 10 Tf 100 580 Td (x ^) Tj ET", "")
	f, err := FindAnchor(pdf, Anchor{Text: "^", Occurrence: 2}, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if want := [2]float64{100 + 5 + 2.78, 580}; !near(f.Origin[:], want[:], 0.01) {
		t.Fatalf("origin %v, want %v", f.Origin, want)
	}
}

// TestFindAnchorFormFanOut: ten forms, each drawing the next eight
// times, would draw the last 8^9 times; the work stops at the budget.
func TestFindAnchorFormFanOut(t *testing.T) {
	var forms []string
	for i := range 10 {
		content := "BT /F1 12 Tf (x) Tj ET"
		res := "/Font << /F1 << /Type /Font /Subtype /Type1 /BaseFont /Helvetica >> >>"
		if i < 9 {
			content = strings.Repeat(" /X Do", 8)
			res = fmt.Sprintf("/XObject << /X %d 0 R >>", 6+i)
		}
		forms = append(forms, fmt.Sprintf("<< /Type /XObject /Subtype /Form /BBox [0 0 1 1] /Resources << %s >> /Length %d >>\nstream\n%s\nendstream", res, len(content), content))
	}
	start := time.Now()
	_, err := FindAnchor(anchorPDF("/X Do", "/Resources << /XObject << /X 5 0 R >> >>", forms...), Anchor{Text: "^"}, Limits{})
	if !errors.Is(err, ErrTooComplex) {
		t.Fatalf("error %v, want ErrTooComplex", err)
	}
	t.Logf("stopped after %v: %v", time.Since(start), err)
}

// TestFindAnchorLastOfManyPages: the default limits read a thousand
// pages to find an anchor on the last.
func TestFindAnchorLastOfManyPages(t *testing.T) {
	f, err := FindAnchor(testPDF(1000), Anchor{Text: "halaman 1000"}, Limits{})
	if err != nil || f.Page != 1000 {
		t.Fatalf("found %+v, %v; want page 1000", f, err)
	}
	// "halaman 1" is on page 1 and at the start of "halaman 10" …
	_, err = FindAnchor(testPDF(1000), Anchor{Text: "halaman 1", Occurrence: 113}, Limits{})
	var nf *AnchorNotFoundError
	if !errors.As(err, &nf) || nf.Found != 112 {
		t.Fatalf("error %v, want 112 occurrences", err)
	}
}

// TestFindAnchorTooComplex: the document's Limits bound content too.
func TestFindAnchorTooComplex(t *testing.T) {
	_, err := FindAnchor(anchorFile(t, "letter.pdf"), Anchor{Text: "${ttd_kepala}"}, Limits{MaxDecompressedBytes: 2000})
	if !errors.Is(err, ErrTooComplex) {
		t.Fatalf("error %v, want ErrTooComplex", err)
	}
}
