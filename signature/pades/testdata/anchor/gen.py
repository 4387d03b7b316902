#!/usr/bin/python3
"""Writes the test letters of anchor_test.go into this directory.

Needs ReportLab (Debian: apt-get install python3-reportlab) and, for the
Type0 letter, DejaVuSans (fonts-dejavu-core). The PDFs are committed; the
tests do not run this. Regenerate with:

    cd signature/pades/testdata/anchor && /usr/bin/python3 gen.py

ReportLab's output depends on its version and the clock only in /ID and
the dates, which the tests do not read.
"""
import zlib

from reportlab.lib.pagesizes import A4, landscape
from reportlab.pdfgen import canvas

W, H = A4


def body(c, y, lines):
    for ln in lines:
        c.drawString(72, y, ln)
        y -= 15
    return y


def letter():
    """Three pages: "^" on page 2; on page 3 "${ttd_kepala}" set with
    character spacing, again split by a font change, and a second "^"
    drawn one glyph at a time."""
    c = canvas.Canvas("letter.pdf", pagesize=A4, pageCompression=1, invariant=1)
    c.setFont("Helvetica", 11)
    body(c, 770, ["PEMERINTAH KOTA CONTOH", "Nomor: 800/123/2026", "Perihal: Undangan rapat", "Dengan hormat,"])
    c.showPage()
    c.setFont("Helvetica", 11)
    y = body(c, 770, ["Demikian surat ini kami sampaikan.", "Atas perhatian Saudara kami ucapkan terima kasih."])
    c.drawString(350, y - 40, "Kepala Dinas,")
    c.setFont("Helvetica", 14)
    c.drawString(380, y - 80, "^")
    c.showPage()
    c.setFont("Helvetica", 11)
    t = c.beginText(72, 700)
    t.setFont("Helvetica", 11)
    t.textLine("Lampiran surat")
    t.setCharSpace(1.5)
    t.textOut("Mengetahui, ")
    t.setFont("Helvetica-Bold", 12)
    t.textOut("${ttd_kepala}")
    t.setCharSpace(0)
    # The placeholder again, its run broken by a change of font, as a
    # word processor writes a run whose formatting changes mid-word.
    t.setTextOrigin(72, 650)
    t.setFont("Helvetica", 12)
    t.setWordSpace(4)
    t.textOut("Tertanda ${ttd_")
    t.setFont("Helvetica-Oblique", 12)
    t.textOut("kepala}")
    t.setWordSpace(0)
    c.drawText(t)
    # Glyphs placed one by one, as some letter systems write them.
    x = 300
    c.setFont("Helvetica", 12)
    for ch in "tanda ^ di sini":
        c.drawString(x, 600, ch)
        x += c.stringWidth(ch, "Helvetica", 12) + 0.3
    c.showPage()
    c.save()


def rotated():
    """Page 1 has /Rotate 90 and is written the way a landscape letter
    is: upright text for the reader, drawn with a rotated matrix. Page 2
    has /Rotate 270 and plain text."""
    c = canvas.Canvas("rotated.pdf", pagesize=A4, pageCompression=1, invariant=1)
    c.setPageRotation(90)
    c.saveState()
    c.translate(W, 0)
    c.rotate(90)
    c.setFont("Helvetica", 12)
    c.drawString(72, 400, "Tabel rekapitulasi")
    c.drawString(400, 150, "Kepala Bidang ${ttd_kepala}")
    c.restoreState()
    c.showPage()
    c.setPageRotation(270)
    c.setFont("Helvetica", 12)
    c.drawString(100, 300, "Lembar kedua ^ tanda")
    c.showPage()
    c.save()


def form():
    """The anchor inside a form XObject drawn with a translation and a
    scale."""
    c = canvas.Canvas("form.pdf", pagesize=A4, pageCompression=1, invariant=1)
    c.beginForm("kop")
    c.setFont("Helvetica", 10)
    c.drawString(10, 10, "ttd: #")
    c.endForm()
    c.setFont("Helvetica", 11)
    c.drawString(72, 770, "Surat dengan kop dari form")
    c.saveState()
    c.translate(300, 200)
    c.scale(1.5, 1.5)
    c.doForm("kop")
    c.restoreState()
    c.showPage()
    c.save()


def ttf():
    """DejaVuSans embedded by ReportLab: a TrueType subset whose codes
    are assigned in order of use, readable only through its ToUnicode
    CMap, as LibreOffice writes its fonts."""
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont
    pdfmetrics.registerFont(TTFont("DejaVuSans", "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"))
    c = canvas.Canvas("ttf.pdf", pagesize=A4, pageCompression=1, invariant=1)
    c.setFont("DejaVuSans", 11)
    c.drawString(72, 700, "Kepala Badan Kepegawaian Daerah")
    c.drawString(72, 680, "ttd. ${ttd_kepala} — é")
    c.showPage()
    c.save()


class Writer:
    """A minimal PDF writer for what ReportLab will not write."""

    def __init__(self):
        self.objs = []

    def add(self, body):
        self.objs.append(body)
        return len(self.objs)

    def stream(self, dict_body, data, compress=True):
        if compress:
            data = zlib.compress(data)
            dict_body += b" /Filter /FlateDecode"
        return self.add(b"<<" + dict_body + b" /Length %d>>\nstream\n" % len(data) + data + b"\nendstream")

    def write(self, path, root):
        out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
        offs = []
        for i, body in enumerate(self.objs, 1):
            offs.append(len(out))
            out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
        x = len(out)
        out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(self.objs) + 1)
        for o in offs:
            out += b"%010d 00000 n \n" % o
        out += b"trailer\n<</Size %d /Root %d 0 R>>\nstartxref\n%d\n%%%%EOF\n" % (len(self.objs) + 1, root, x)
        open(path, "wb").write(out)


def handmade():
    """Content as LibreOffice-like writers make it, written by hand:
    page 1 splits the anchor over two TJ strings with a kern, over two
    Tj operators, and writes one word per BT with a large negative kern
    as the space; the page tree gives /Rotate 180 and /Resources to its
    pages by inheritance. Page 2 uses a Type0 font, Identity-H with a
    ToUnicode CMap and /W widths."""
    w = Writer()
    font = w.add(b"<</Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding>>")
    # Widths from the AFM, so poppler and the reader agree on positions.
    p1 = (b"BT /F1 12 Tf 72 700 Td [(Hormat kami,)] TJ ET\n"
          b"BT /F1 12 Tf 1 0 0 1 72 650 Tm [(tanda: ${ttd_)-30(kepala})] TJ ET\n"
          b"BT /F1 12 Tf 72 600 Td (Nama: ${ttd) Tj (_kepala}) Tj ET\n"
          b"BT /F1 12 Tf 72 550 Td [(Kepala)-400(Dinas)] TJ ET\n"
          b"q 1 0 0 1 0 -20 cm BT /F1 12 Tf 72 520 Td (NIP) Tj ET BT /F1 12 Tf 96 520 Td (^) Tj ET Q\n")
    c1 = w.stream(b"", p1)
    # Type0: codes are glyph ids of DejaVuSans, not embedded (a reader
    # has the ToUnicode CMap for text and /W for positions).
    from reportlab.pdfbase.ttfonts import TTFontFile
    tt = TTFontFile("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
    text = "Pejabat: ${ttd_kepala}"
    gids = [tt.charToGlyph[ord(ch)] for ch in text]
    widths = {tt.charToGlyph[ord(ch)]: round(tt.charWidths[ord(ch)]) for ch in text}
    uni = {g: ord(ch) for g, ch in zip(gids, text)}
    tu = b"/CIDInit /ProcSet findresource begin 12 dict begin begincmap\n"
    tu += b"/CMapName /Adobe-Identity-UCS def /CMapType 2 def\n"
    tu += b"1 begincodespacerange <0000> <FFFF> endcodespacerange\n"
    tu += b"%d beginbfchar\n" % len(uni)
    for g, u in sorted(uni.items()):
        tu += b"<%04X> <%04X>\n" % (g, u)
    tu += b"endbfchar\nendcmap CMapName currentdict /CMap defineresource pop end end\n"
    tuo = w.stream(b"", tu)
    wa = b" ".join(b"%d [%d]" % (g, widths[g]) for g in sorted(widths))
    desc = w.add(b"<</Type /FontDescriptor /FontName /DejaVuSans /Flags 32 /FontBBox [-1021 -463 1793 1232] "
                 b"/ItalicAngle 0 /Ascent 928 /Descent -236 /CapHeight 729 /StemV 80>>")
    cid = w.add(b"<</Type /Font /Subtype /CIDFontType2 /BaseFont /DejaVuSans "
                b"/CIDSystemInfo <</Registry (Adobe) /Ordering (Identity) /Supplement 0>> "
                b"/FontDescriptor %d 0 R /DW 1000 /W [%s]>>" % (desc, wa))
    t0 = w.add(b"<</Type /Font /Subtype /Type0 /BaseFont /DejaVuSans /Encoding /Identity-H "
               b"/DescendantFonts [%d 0 R] /ToUnicode %d 0 R>>" % (cid, tuo))
    hexs = b"".join(b"%04X" % g for g in gids)
    p2 = b"BT /F2 14 Tf 100 400 Td <" + hexs + b"> Tj ET\n"
    c2 = w.stream(b"", p2)
    pages = len(w.objs) + 1
    pg1 = pages + 1
    pg2 = pages + 2
    w.add(b"<</Type /Pages /Kids [%d 0 R %d 0 R] /Count 2 /Rotate 180 /MediaBox [0 0 595 842] "
          b"/Resources <</Font <</F1 %d 0 R /F2 %d 0 R>>>>>>" % (pg1, pg2, font, t0))
    w.add(b"<</Type /Page /Parent %d 0 R /Contents %d 0 R>>" % (pages, c1))
    w.add(b"<</Type /Page /Parent %d 0 R /Contents %d 0 R /Rotate 0>>" % (pages, c2))
    root = w.add(b"<</Type /Catalog /Pages %d 0 R>>" % pages)
    w.write("handmade.pdf", root)


if __name__ == "__main__":
    letter()
    rotated()
    form()
    handmade()
    ttf()
