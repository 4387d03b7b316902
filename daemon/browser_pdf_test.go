package daemon_test

import (
	"bytes"
	"compress/zlib"
	"fmt"
	"strings"

	"github.com/tekenid/teken/internal/demo"
)

// pdfFile is demo.PDFFile: a PDF of the given objects.
var pdfFile = demo.PDFFile

func pdfStream(dict string, data []byte) string {
	return fmt.Sprintf("<< %s /Length %d >>\nstream\n%s\nendstream", dict, len(data), data)
}

// pagedLetterPDF is a letter of several A4 pages, each headed "Halaman n"
// and holding its lines, so page turning has something to show.
func pagedLetterPDF(title string, pages ...[]string) []byte {
	n := len(pages)
	// 1 catalogue, 2 pages, 3 font, then a page and its content each.
	kids := make([]string, n)
	objs := []string{"<< /Type /Catalog /Pages 2 0 R >>", "", "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"}
	for i, lines := range pages {
		page, content := 4+2*i, 5+2*i
		kids[i] = fmt.Sprintf("%d 0 R", page)
		var c strings.Builder
		fmt.Fprintf(&c, "BT\n/F1 16 Tf\n20 TL\n72 770 Td\n(%s) Tj T*\n(Halaman %d dari %d) Tj T*\nT*\n/F1 12 Tf\n", pdfText(title), i+1, n)
		for _, l := range lines {
			fmt.Fprintf(&c, "(%s) Tj T*\n", pdfText(l))
		}
		c.WriteString("ET\n")
		objs = append(objs,
			fmt.Sprintf("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>", content),
			pdfStream("", []byte(c.String())))
	}
	objs[1] = fmt.Sprintf("<< /Type /Pages /Kids [%s] /Count %d >>", strings.Join(kids, " "), n)
	return pdfFile(objs...)
}

func pdfText(s string) string {
	return strings.NewReplacer(`\`, `\\`, `(`, `\(`, `)`, `\)`).Replace(s)
}

// contentBombPDF is a one-page PDF whose page content, some tens of
// kilobytes of FlateDecode, inflates to ops strokes across the page: well
// within tekend's PDF budget (a content stream is not inflated to sign a
// PDF), far beyond what pdf.js draws within the page's time limit.
func contentBombPDF(ops int) []byte {
	var raw bytes.Buffer
	raw.WriteString("BT /F1 14 Tf 72 800 Td (Surat dengan isi halaman yang sangat berat) Tj ET\n0.5 w\n")
	op := []byte("0 0 m 595 842 l S\n")
	for range ops {
		raw.Write(op)
	}
	var z bytes.Buffer
	w, _ := zlib.NewWriterLevel(&z, zlib.BestCompression)
	_, _ = w.Write(raw.Bytes())
	_ = w.Close()
	return pdfFile(
		"<< /Type /Catalog /Pages 2 0 R >>",
		"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
		"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>",
		pdfStream("/Filter /FlateDecode", z.Bytes()),
		"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
	)
}

// garbagePDF starts like a PDF and holds nothing pdf.js can read.
func garbagePDF() []byte {
	return []byte("%PDF-1.7\n%\xe2\xe3\xcf\xd3\nthis is not a PDF body at all; there is no cross-reference and no object\n" +
		strings.Repeat("\x00\x13garbage\xff", 64) + "\n%%EOF\n")
}
