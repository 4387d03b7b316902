package demo

import (
	"bytes"
	"fmt"
	"strings"
)

// letterPDF renders a one-page A4 letter as a minimal, valid PDF 1.4 with the
// standard Helvetica font, so the demo needs no font files or PDF library.
func letterPDF(heading []string, body []string) []byte {
	var content strings.Builder
	content.WriteString("BT\n/F1 11 Tf\n14 TL\n72 770 Td\n")
	for i, line := range heading {
		if i == 0 {
			content.WriteString("/F2 13 Tf\n")
		} else if i == 1 {
			content.WriteString("/F1 11 Tf\n")
		}
		fmt.Fprintf(&content, "(%s) Tj T*\n", pdfEscape(line))
	}
	content.WriteString("T*\n")
	for _, line := range body {
		fmt.Fprintf(&content, "(%s) Tj T*\n", pdfEscape(line))
	}
	content.WriteString("ET\n")

	objects := []string{
		"<< /Type /Catalog /Pages 2 0 R >>",
		"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
		"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 4 0 R /F2 5 0 R >> >> /Contents 6 0 R >>",
		"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
		"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>",
		fmt.Sprintf("<< /Length %d >>\nstream\n%sendstream", content.Len(), content.String()),
	}
	return PDFFile(objects...)
}

// PDFFile writes a PDF 1.4 of the given objects, numbered from 1 (the
// first one the catalogue), with a classic cross-reference table.
func PDFFile(objects ...string) []byte {
	var b bytes.Buffer
	b.WriteString("%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
	offsets := make([]int, len(objects))
	for i, obj := range objects {
		offsets[i] = b.Len()
		fmt.Fprintf(&b, "%d 0 obj\n%s\nendobj\n", i+1, obj)
	}
	xref := b.Len()
	fmt.Fprintf(&b, "xref\n0 %d\n0000000000 65535 f \n", len(objects)+1)
	for _, off := range offsets {
		fmt.Fprintf(&b, "%010d 00000 n \n", off)
	}
	fmt.Fprintf(&b, "trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n", len(objects)+1, xref)
	return b.Bytes()
}

func pdfEscape(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `(`, `\(`, `)`, `\)`)
	return r.Replace(s)
}
