package pades

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// anchorSeeds are FuzzFindAnchor's seeds built by code: the generated
// letters, cut short and with their content damaged, and hostile content.
func anchorSeeds(t testing.TB) [][]byte {
	var seeds [][]byte
	for _, f := range []string{"letter.pdf", "rotated.pdf", "form.pdf", "handmade.pdf"} {
		b, err := os.ReadFile(filepath.Join("testdata", "anchor", f))
		if err != nil {
			t.Fatal(err)
		}
		seeds = append(seeds, b, b[:len(b)*2/3])
		broken := []byte(strings.NewReplacer("Tj", "Tj (", "TJ", "[ TJ", "Do", "Do Do", "/Length", "/Length 3 /Foo").Replace(string(b)))
		seeds = append(seeds, broken)
	}
	fan := "<< /Type /XObject /Subtype /Form /BBox [0 0 1 1] /Resources << /XObject << /X 6 0 R >> >> /Length 23 >>\nstream\n/X Do /X Do /X Do /X Do\nendstream"
	seeds = append(seeds,
		anchorPDF("BT /F1 12 Tf 72 700 Td [(a) -3000 (^)] TJ ET", ""),
		anchorPDF("q q q Q BI /W 1 /H 1 ID \x00EI\n EI Q BT (^) Tj ET", ""),
		anchorPDF("BT /F1 12 Tf 1e308 0 0 -1e308 0 0 Tm (^) ' 1 2 (x) \" ET", ""),
		anchorPDF("/X Do", "/Resources << /XObject << /X 5 0 R >> >>", fan, fan),
		anchorPDF("BT /F2 9 Tf <00010002> Tj ET", "/Resources << /Font << /F2 5 0 R >> >>",
			"<< /Type /Font /Subtype /Type0 /Encoding /Identity-H /DescendantFonts [<< /W [0 4294967295 1 1 [2 3]] >>] /ToUnicode 6 0 R >>",
			"<< /Length 103 >>\nstream\n/CIDSystemInfo << /Registry (Adobe) >> def 1 beginbfrange <0000> <FFFF> <005E> endbfrange 1 beginbfchar\nendstream"),
	)
	return seeds
}

// FuzzFindAnchor feeds arbitrary documents to FindAnchor: it must answer
// with a place on a page of the document or one of its documented
// errors, never panic, and allocate within the bound the package's
// reader keeps, with room for the glyphs it reads (counted against
// MaxParsedBytes, but held in slices that grow by doubling).
// Its seeds are anchorSeeds, written to testdata/fuzz/FuzzFindAnchor by
// TestWriteAnchorFuzzSeeds.
func FuzzFindAnchor(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, a := range []Anchor{{Text: "^"}, {Text: "${ttd_kepala}", Occurrence: 2}} {
			var found Found
			var err error
			n := totalAlloc(func() { found, err = FindAnchor(b, a, fuzzLimits) })
			if max := 2 * allocBound(len(b), fuzzLimits); n > max {
				t.Fatalf("FindAnchor of %d bytes allocated %d, more than %d", len(b), n, max)
			}
			if err != nil {
				if !typed(err) && !errors.Is(err, ErrAnchorNotFound) {
					t.Fatalf("FindAnchor: untyped error %v", err)
				}
				continue
			}
			if found.Page < 1 {
				t.Fatalf("found on page %d", found.Page)
			}
			for _, v := range found.Rect {
				if math.IsNaN(v) {
					t.Fatalf("rect %v", found.Rect)
				}
			}
		}
	})
}

// TestWriteAnchorFuzzSeeds writes anchorSeeds into
// testdata/fuzz/FuzzFindAnchor when PADES_WRITE_SEEDS is set.
func TestWriteAnchorFuzzSeeds(t *testing.T) {
	if os.Getenv("PADES_WRITE_SEEDS") == "" {
		t.Skip("set PADES_WRITE_SEEDS=1 to rewrite testdata/fuzz/FuzzFindAnchor")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzFindAnchor")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, s := range anchorSeeds(t) {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", s)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed%02d", i)), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestAnchorSeedsTyped runs the seeds once as a plain test.
func TestAnchorSeedsTyped(t *testing.T) {
	for i, s := range anchorSeeds(t) {
		_, err := FindAnchor(s, Anchor{Text: "^"}, fuzzLimits)
		if err != nil && !typed(err) && !errors.Is(err, ErrAnchorNotFound) {
			t.Errorf("seed %d: untyped error %v", i, err)
		}
	}
}

func TestASCIIText(t *testing.T) {
	if len(asciiText) != 128 {
		t.Fatalf("asciiText has %d bytes", len(asciiText))
	}
	for i := range 128 {
		if asciiText[i] != byte(i) {
			t.Fatalf("asciiText[%d] = %d", i, asciiText[i])
		}
	}
}
