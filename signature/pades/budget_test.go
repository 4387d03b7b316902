package pades

import (
	"bytes"
	"compress/zlib"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// bombPDF writes a PDF whose page tree is a chain through n Flate object
// streams (n >= 3), one object each, every stream inflating to size bytes
// of zeros after its object: a catalog, n-2 intermediate page tree nodes
// and a leaf page, so reading the page tree decodes every stream. The
// cross-reference is an unfiltered stream.
func bombPDF(n, size int) []byte { return bombPDFWith(n, size, "") }

// bombPDFWith is bombPDF with extra entries in the catalog, which is
// compressed in the first object stream.
func bombPDFWith(n, size int, extra string) []byte {
	var b bytes.Buffer
	b.WriteString("%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
	offs := map[int]int{}
	pad := make([]byte, size)
	for k := 1; k <= n; k++ {
		var body string
		switch {
		case k == 1:
			body = "<< /Type /Catalog /Pages 2 0 R " + extra + " >>"
		case k == n:
			body = fmt.Sprintf("<< /Type /Page /Parent %d 0 R >>", k-1)
		case k == 2:
			body = fmt.Sprintf("<< /Type /Pages /Kids [%d 0 R] /Count 1 /MediaBox [0 0 595 842] >>", k+1)
		default:
			body = fmt.Sprintf("<< /Type /Pages /Parent %d 0 R /Kids [%d 0 R] /Count 1 >>", k-1, k+1)
		}
		head := fmt.Sprintf("%d 0 ", k)
		var z bytes.Buffer
		zw, _ := zlib.NewWriterLevel(&z, zlib.BestSpeed) // ten times faster than best, 25% larger
		zw.Write([]byte(head + body + "\n"))
		zw.Write(pad[:max(0, size-len(head)-len(body)-1)])
		zw.Close()
		num := n + k
		offs[num] = b.Len()
		fmt.Fprintf(&b, "%d 0 obj\n<< /Type /ObjStm /N 1 /First %d /Filter /FlateDecode /Length %d >>\nstream\n", num, len(head), z.Len())
		b.Write(z.Bytes())
		b.WriteString("\nendstream\nendobj\n")
	}
	xnum := 2*n + 1
	offs[xnum] = b.Len()
	var rows bytes.Buffer
	row := func(kind byte, f2 uint32, f3 uint16) {
		rows.WriteByte(kind)
		rows.Write([]byte{byte(f2 >> 24), byte(f2 >> 16), byte(f2 >> 8), byte(f2)})
		rows.Write([]byte{byte(f3 >> 8), byte(f3)})
	}
	row(0, 0, 65535)
	for k := 1; k <= n; k++ {
		row(2, uint32(n+k), 0)
	}
	for num := n + 1; num <= xnum; num++ {
		row(1, uint32(offs[num]), 0)
	}
	fmt.Fprintf(&b, "%d 0 obj\n<< /Type /XRef /Size %d /W [1 4 2] /Root 1 0 R /Length %d >>\nstream\n", xnum, xnum+1, rows.Len())
	b.Write(rows.Bytes())
	fmt.Fprintf(&b, "\nendstream\nendobj\nstartxref\n%d\n%%%%EOF\n", offs[xnum])
	return b.Bytes()
}

// allocated is what f allocates on the heap, all goroutines included,
// measured from a fresh collection.
func allocated(f func()) uint64 {
	runtime.GC()
	return totalAlloc(f)
}

// totalAlloc is what f allocates on the heap. TotalAlloc is exact after
// ReadMemStats, which flushes every cache; no collection is needed.
func totalAlloc(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

func wantTooComplex(t *testing.T, err error, text string) {
	t.Helper()
	if !errors.Is(err, ErrTooComplex) || !strings.Contains(err.Error(), text) {
		t.Fatalf("got %v, want ErrTooComplex with %q", err, text)
	}
}

// TestDecompressionBombStoppedEarly: eight streams of 4 MiB each, under
// 64 KiB on disk, against a 1 MiB budget. Without the budget this
// allocated 77 MiB and was accepted; now inflating stops at the budget,
// and the whole Inspect allocates about the budget.
func TestDecompressionBombStoppedEarly(t *testing.T) {
	const limit = 1 << 20
	pdf := bombPDF(8, 4<<20)
	if len(pdf) > 64<<10 {
		t.Fatalf("bomb is %d bytes; meant to be small", len(pdf))
	}
	lim := Limits{MaxDecompressedBytes: limit}
	var err error
	n := allocated(func() { _, err = Inspect(pdf, nil, lim) })
	wantTooComplex(t, err, "pades: document over budget: decompressed bytes exceed 1048576 (limit max_decompressed_bytes)")
	t.Logf("%d byte bomb, %d byte budget: TotalAlloc %d (%.2f× the budget)", len(pdf), limit, n, float64(n)/limit)
	if n > 2*limit {
		t.Fatalf("Inspect allocated %d bytes, more than 2× the %d byte budget", n, limit)
	}
	p := newPKI(t)
	signer, cert := p.official(t, "p256")
	if _, err := Sign(context.Background(), pdf, signer, cert, Options{Limits: lim}); !errors.Is(err, ErrTooComplex) || signer.calls() != 0 {
		t.Fatalf("Sign: %v after %d calls, want ErrTooComplex and no call", err, signer.calls())
	}
}

// TestDecompressionBombDefaultLimits: with the zero Limits a 33 MiB stream
// is stopped at DefaultLimits.MaxDecompressedBytes.
func TestDecompressionBombDefaultLimits(t *testing.T) {
	pdf := bombPDF(3, 33<<20)
	var err error
	n := allocated(func() { _, err = Inspect(pdf, nil, Limits{}) })
	wantTooComplex(t, err, "decompressed bytes exceed 33554432 (limit max_decompressed_bytes)")
	t.Logf("%d byte bomb, default limits: TotalAlloc %d", len(pdf), n)
	if limit := uint64(DefaultLimits.MaxDecompressedBytes); n > 2*limit {
		t.Fatalf("Inspect allocated %d bytes, more than 2× the %d byte budget", n, limit)
	}
}

// denseSyntax is k empty-keyed one-entry dictionaries: 7 bytes each on
// disk, about 400 bytes each once parsed.
func denseSyntax(k int) string { return "/Dense [" + strings.Repeat("<</ 1>>", k) + "]" }

// TestParseBombStoppedEarly: syntax that parses into far more memory than
// it inflates to (or takes on disk), in an object stream and in the
// file. Without the parse budget the compressed one (11 KB at best
// compression) allocated 951 MiB and was accepted.
func TestParseBombStoppedEarly(t *testing.T) {
	const limit = 4 << 20
	lim := Limits{MaxParsedBytes: limit}
	for name, pdf := range map[string][]byte{
		"object stream": bombPDFWith(3, 0, denseSyntax(1<<20)),
		"file":          testPDFWith(1, denseSyntax(1<<20), ""),
	} {
		t.Run(name, func(t *testing.T) {
			var err error
			n := allocated(func() { _, err = Inspect(pdf, nil, lim) })
			wantTooComplex(t, err, "parsed bytes exceed 4194304 (limit max_parsed_bytes)")
			// The object stream's 7 MiB is inflated (twice its size
			// allocated: chunks, then joined) before the parser is
			// stopped.
			inflated := uint64(0)
			if name == "object stream" {
				inflated = 7 << 20
			}
			t.Logf("%d byte file: TotalAlloc %d", len(pdf), n)
			if n > 2*limit+2*inflated+1<<20 {
				t.Fatalf("Inspect allocated %d bytes, want at most 2× the %d byte parse budget + 2× %d inflated + 1 MiB", n, limit, inflated)
			}
		})
	}
}

// TestRepeatedReadsCounted: a cycle of reads that each take little
// memory but together would be quadratic (one large CropBox object that
// every page inherits, parsed again for each of them) is stopped by the
// same budget.
func TestRepeatedReadsCounted(t *testing.T) {
	big := "[" + strings.Repeat("0 ", 20000) + "]" // not a rectangle: read and dropped by every page
	pdf := testPDFWith(400, "", "/CropBox 804 0 R", big)
	lim := Limits{MaxParsedBytes: 16 << 20}
	if _, err := Inspect(pdf, nil, lim); !errors.Is(err, ErrTooComplex) {
		t.Fatalf("Inspect: %v, want ErrTooComplex", err)
	}
	if _, err := Inspect(testPDFWith(400, "", "/CropBox 804 0 R", "[0 0 500 800]"), nil, lim); err != nil {
		t.Fatalf("Inspect of the same pages with a real CropBox: %v", err)
	}
}

// TestWrongLengthCountsWhatIsScanned: a stream whose /Length is wrong is
// found by its endstream keyword, and only the bytes searched count, not
// the rest of the file.
func TestWrongLengthCountsWhatIsScanned(t *testing.T) {
	extra := make([]string, 20)
	for i := range extra {
		extra[i] = "<< /Length 1 >>\nstream\nisi yang lebih panjang\nendstream"
	}
	scan := "<< /Length 2097152 >>\nstream\n" + strings.Repeat("x", 2<<20) + "\nendstream"
	pdf := testPDFWith(1, "", "", append(extra, scan)...)
	if _, err := Inspect(pdf, nil, Limits{MaxParsedBytes: 1 << 20}); err != nil {
		t.Fatal(err)
	}
}

func TestMaxObjects(t *testing.T) {
	extra := make([]string, 300)
	for i := range extra {
		extra[i] = "null"
	}
	pdf := testPDFWith(1, "", "", extra...)
	if _, err := Inspect(pdf, nil, Limits{MaxObjects: 100}); true {
		wantTooComplex(t, err, "objects exceed 100 (limit max_objects)")
	}
	if _, err := Inspect(pdf, nil, Limits{}); err != nil {
		t.Fatal(err)
	}
}

// TestObjectStreamCache: three 300 KiB streams fit a 1 MiB budget when
// each is decoded once; with room for one stream in the cache, the walk
// for active content decodes a dropped one again, which counts again.
func TestObjectStreamCache(t *testing.T) {
	pdf := bombPDF(3, 300<<10)
	if _, err := Inspect(pdf, nil, Limits{MaxDecompressedBytes: 1 << 20}); err != nil {
		t.Fatalf("default cache: %v", err)
	}
	_, err := Inspect(pdf, nil, Limits{MaxDecompressedBytes: 1 << 20, MaxObjectStreams: 1})
	wantTooComplex(t, err, "limit max_decompressed_bytes")

	// Decoding again gives the same objects.
	b := xrefStreamPDF(t, 30)
	for _, lim := range []Limits{{}, {MaxObjectStreams: 1}} {
		in, err := Inspect(b, nil, lim)
		if err != nil || in.Pages != 30 {
			t.Fatalf("MaxObjectStreams %d: %v, %v", lim.MaxObjectStreams, in, err)
		}
	}
}

// TestDefaultLimitsFitLargeDocument: a 1,000-page report written with
// object streams stays well inside the defaults, by the factor their
// comment claims.
func TestDefaultLimitsFitLargeDocument(t *testing.T) {
	qpdf := need(t, "qpdf", "qpdf")
	in := writeTemp(t, "in.pdf", testPDF(1000))
	out := filepath.Join(t.TempDir(), "out.pdf")
	if msg, err := run(t, qpdf, "--object-streams=generate", in, out); err != nil {
		t.Fatalf("qpdf: %v: %s", err, msg)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	d, pages, _, _, err := open(b, newBudget(Limits{}))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d pages, %d objects: %d bytes inflated, %d parsed", len(pages), len(d.xref), d.bud.inflated, d.bud.parsed)
	if 10*d.bud.inflated > DefaultLimits.MaxDecompressedBytes || 10*d.bud.parsed > DefaultLimits.MaxParsedBytes || 10*len(d.xref) > DefaultLimits.MaxObjects {
		t.Fatalf("less than ten times headroom in %+v", DefaultLimits)
	}
}

// TestUnpredictInPlace compares the in-place PNG predictor decoder with
// a straightforward one on random rows of every filter type.
func TestUnpredictInPlace(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, w := range []int{1, 2, 5, 17} {
		rows := 40
		b := make([]byte, rows*(w+1))
		for i := range b {
			b[i] = byte(r.IntN(256))
		}
		for i := 0; i < len(b); i += w + 1 {
			b[i] = byte(r.IntN(5))
		}
		want := unpredictCopy(b, w)
		got, err := unpredict(bytes.Clone(b), dict{"Predictor": int64(12), "Columns": int64(w)})
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("width %d: %v\n got %x\nwant %x", w, err, got, want)
		}
	}
}

func unpredictCopy(b []byte, w int) []byte {
	var out []byte
	prev := make([]byte, w)
	for i := 0; i < len(b); i += w + 1 {
		cur := bytes.Clone(b[i+1 : i+1+w])
		for x := range cur {
			var left, upLeft byte
			if x > 0 {
				left, upLeft = cur[x-1], prev[x-1]
			}
			switch up := prev[x]; b[i] {
			case 1:
				cur[x] += left
			case 2:
				cur[x] += up
			case 3:
				cur[x] += byte((int(left) + int(up)) / 2)
			case 4:
				cur[x] += paeth(left, up, upLeft)
			}
		}
		out = append(out, cur...)
		prev = cur
	}
	return out
}
