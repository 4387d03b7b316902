package soak

import (
	"bytes"
	"fmt"
	"math/rand/v2"
)

// bigPDF is a valid one-page PDF 1.4 of at least size bytes: a line of text
// and, filling the rest, an uncompressed RGB image (an image XObject
// without a filter, ISO 32000-1 §8.9.5) drawn across the page, as a scanned
// letter would be. The pixels are random from seed, so no two documents
// are alike and none compresses.
func bigPDF(size int, seed uint64) []byte {
	const width = 1024 // pixels per row, 3 bytes each
	rows := (size + 3*width - 1) / (3 * width)
	pixels := make([]byte, 3*width*rows)
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	for i := 0; i+8 <= len(pixels); i += 8 {
		v := r.Uint64()
		for j := range 8 {
			pixels[i+j] = byte(v >> (8 * j))
		}
	}
	content := fmt.Sprintf("q 595 0 0 842 0 0 cm /Im1 Do Q\nBT /F1 11 Tf 72 800 Td (Lampiran pindaian %d) Tj ET\n", seed)
	objects := [][]byte{
		[]byte("<< /Type /Catalog /Pages 2 0 R >>"),
		[]byte("<< /Type /Pages /Kids [3 0 R] /Count 1 >>"),
		[]byte("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 4 0 R >> /XObject << /Im1 5 0 R >> >> /Contents 6 0 R >>"),
		[]byte("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"),
		append(append([]byte(fmt.Sprintf("<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceRGB /BitsPerComponent 8 /Length %d >>\nstream\n", width, rows, len(pixels))), pixels...), "\nendstream"...),
		[]byte(fmt.Sprintf("<< /Length %d >>\nstream\n%sendstream", len(content), content)),
	}
	var b bytes.Buffer
	b.Grow(len(pixels) + 4096)
	b.WriteString("%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
	offsets := make([]int, len(objects))
	for i, obj := range objects {
		offsets[i] = b.Len()
		fmt.Fprintf(&b, "%d 0 obj\n", i+1)
		b.Write(obj)
		b.WriteString("\nendobj\n")
	}
	xref := b.Len()
	fmt.Fprintf(&b, "xref\n0 %d\n0000000000 65535 f \n", len(objects)+1)
	for _, off := range offsets {
		fmt.Fprintf(&b, "%010d 00000 n \n", off)
	}
	fmt.Fprintf(&b, "trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n", len(objects)+1, xref)
	return b.Bytes()
}
