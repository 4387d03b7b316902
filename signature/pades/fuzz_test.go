package pades

import (
	"bytes"
	"compress/zlib"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// fuzzLimits are small, so that a fuzzed input reaches them.
var fuzzLimits = Limits{MaxDecompressedBytes: 256 << 10, MaxParsedBytes: 1 << 20, MaxObjects: 4096, MaxObjectStreams: 2}

// allocBound is the most Inspect may allocate for an input of n bytes
// under lim:
//   - 3× MaxDecompressedBytes: inflating builds the output in growing
//     chunks and copies them once (2×), and every stream's reader costs
//     less than the decodeCost it is charged;
//   - 2× MaxParsedBytes: the charges estimate the heap of parsed objects
//     (within a few per cent on real documents), with room for Go's size
//     classes and map growth;
//   - 2× (n + MaxDecompressedBytes): a literal string is counted once read,
//     so the one that passes the budget can be as long as the data it is
//     read from, and is built by doubling;
//   - 512 bytes per object: the cross-reference map, the page list and the
//     walk's index of objects;
//   - 1 MiB of fixed cost: the zlib reader's tables, error texts.
func allocBound(n int, lim Limits) uint64 {
	return uint64(3*lim.MaxDecompressedBytes + 2*lim.MaxParsedBytes + 2*(int64(n)+lim.MaxDecompressedBytes) + 512*int64(lim.MaxObjects) + 1<<20)
}

// FuzzCheck feeds arbitrary bytes to the PDF reader: it must answer with
// nil or one of the package's refusals, never panic, never allocate more
// than allocBound, and the block must be placeable on whatever Inspect
// accepts.
func FuzzCheck(f *testing.F) {
	f.Add(testPDF(1))
	f.Add(testPDF(3))
	f.Add([]byte("%PDF-1.7\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\nxref\n0 2\n0000000000 65535 f \n0000000009 00000 n \ntrailer<</Size 2/Root 1 0 R/Prev 0>>\nstartxref\n54\n%%EOF"))
	f.Add([]byte("%PDF-1.5\n1 0 obj<</Type/XRef/W[1 2 1]/Size 1/Filter/FlateDecode/DecodeParms<</Predictor 12/Columns 4>>/Length 3>>stream\nabc\nendstream endobj\nstartxref\n9\n%%EOF"))
	f.Add(letterWith("", "/Annots [6 0 R]", uriLink))
	f.Add(letterWith("/OpenAction "+jsAction, ""))
	f.Fuzz(func(t *testing.T, b []byte) {
		var err, berr error
		var in *Inspection
		n := totalAlloc(func() { _, err = Inspect(b, nil, fuzzLimits) })
		if max := allocBound(len(b), fuzzLimits); n > max {
			t.Fatalf("Inspect of %d bytes allocated %d, more than %d", len(b), n, max)
		}
		if err != nil && !typed(err) {
			t.Fatalf("Inspect: untyped error %v", err)
		}
		in, berr = Inspect(b, &Appearance{}, fuzzLimits)
		if err == nil && berr != nil {
			t.Fatalf("Inspect passed without a block but not with one: %v", berr)
		}
		if berr == nil && (in.Block == nil || in.Block.Page < 1 || in.Block.Page > in.Pages) {
			t.Fatalf("block %+v of %d pages", in.Block, in.Pages)
		}
	})
}

// TestWriteFuzzSeeds writes the FuzzCheck seeds built by code into
// testdata/fuzz/FuzzCheck when PADES_WRITE_SEEDS is set: compression and
// parse bombs sized for fuzzLimits, a cross-reference too large for them,
// and active content in an object stream.
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("PADES_WRITE_SEEDS") == "" {
		t.Skip("set PADES_WRITE_SEEDS=1 to rewrite testdata/fuzz/FuzzCheck")
	}
	var xref bytes.Buffer
	zw := zlib.NewWriter(&xref)
	zw.Write(make([]byte, 5000)) // 5,000 free entries, one byte each
	zw.Close()
	manyObjects := fmt.Sprintf("%%PDF-1.5\n1 0 obj<</Type/XRef/W[1 0 0]/Size 5000/Root 1 0 R/Filter/FlateDecode/Length %d>>stream\n%s\nendstream endobj\nstartxref\n9\n%%%%EOF\n", xref.Len(), xref.Bytes())
	seeds := map[string][]byte{
		"bomb":             bombPDF(3, 1<<20),
		"bomb-16-streams":  bombPDF(16, 64<<10),
		"dense-objstm":     bombPDFWith(3, 0, denseSyntax(30000)),
		"dense-file":       testPDFWith(1, denseSyntax(4000), ""),
		"repeated-cropbox": testPDFWith(50, "", "/CropBox 104 0 R", "["+strings.Repeat("0 ", 5000)+"]"),
		"many-objects":     []byte(manyObjects),
		"javascript-link":  letterWith("", "/Annots [6 0 R]", link(jsAction)),
		"embedded-file":    letterWith("/Names << /EmbeddedFiles << /Names [(lampiran.txt) 6 0 R] >> >>", "", fileSpec, fileStream),
	}
	qpdf := need(t, "qpdf", "qpdf")
	in := writeTemp(t, "in.pdf", seeds["javascript-link"])
	out := filepath.Join(t.TempDir(), "out.pdf")
	if msg, err := run(t, qpdf, "--object-streams=generate", in, out); err != nil {
		t.Fatalf("qpdf: %v: %s", err, msg)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	seeds["javascript-objstm"] = b
	dir := filepath.Join("testdata", "fuzz", "FuzzCheck")
	for name, b := range seeds {
		body := "go test fuzz v1\n[]byte(" + strconv.Quote(string(b)) + ")\n"
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// typed reports whether err is one of the refusals Inspect documents.
func typed(err error) bool {
	for _, want := range []error{ErrMalformed, ErrEncrypted, ErrLocked, ErrPage, ErrTooComplex, ErrActiveContent} {
		if errors.Is(err, want) {
			return true
		}
	}
	return false
}
