package pades

import (
	"bytes"
	"crypto/x509"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	qrcode "github.com/skip2/go-qrcode"
	"golang.org/x/text/unicode/norm"
)

// Appearance asks for a visible signature block.
type Appearance struct {
	// Page is 1-based; 0 means the last page.
	Page int
	// Rect is the block in the page's default user space, in points
	// (x0, y0, x1, y1); the zero value puts a DefaultWidth × DefaultHeight
	// block in the bottom right corner of the visible area (CropBox, else
	// MediaBox), Margin points from its edges.
	Rect [4]float64
	// Name and NIP are shown under the caption; empty means the
	// certificate's Subject CN and serialNumber. A line with letters
	// outside Latin-1 ("Nguyễn", "Muḥammad", a name in Jawi) is drawn in
	// DejaVu Sans, embedded.
	Name, NIP string
	// VerifyURL, when set, is drawn as a QR code on the left of the block.
	VerifyURL string
	// Jabatan, the signer's position, is written under the name.
	Jabatan string
	// Paraf draws the small block of one who drafted or checked the
	// letter: Initials (or the name's initials) and the date, instead of
	// the full block.
	Paraf    bool
	Initials string
}

// Size of the default block and its distance from the page edges, in
// points.
const (
	DefaultWidth  = 240.0
	DefaultHeight = 80.0
	Margin        = 36.0
	// A paraf's default block: initials and a date.
	ParafWidth  = 110.0
	ParafHeight = 36.0
)

// Caption is the first line of the visible block.
const Caption = "Ditandatangani secara elektronik oleh"

// pick returns the 1-based number and the page for want (0 = last).
func pick(pages []page, want int) (int, page, error) {
	if want == 0 {
		want = len(pages)
	}
	if want < 1 || want > len(pages) {
		return 0, page{}, fmt.Errorf("%w: page %d of %d", ErrPage, want, len(pages))
	}
	return want, pages[want-1], nil
}

// place returns the 1-based page number and the block's rectangle for a,
// or ErrPage or ErrPlacement.
func place(pages []page, a Appearance) (int, page, [4]float64, error) {
	n, pg, err := pick(pages, a.Page)
	if err != nil {
		return 0, page{}, [4]float64{}, err
	}
	r := blockRect(pg, a)
	b := pg.box
	// A little slack for rounding in the central system's arithmetic.
	const slack = 0.5
	if r[2]-r[0] < 1 || r[3]-r[1] < 1 {
		return 0, page{}, [4]float64{}, fmt.Errorf("%w: rect [%g %g %g %g] has no area", ErrPlacement, r[0], r[1], r[2], r[3])
	}
	if r[0] < b[0]-slack || r[1] < b[1]-slack || r[2] > b[2]+slack || r[3] > b[3]+slack {
		return 0, page{}, [4]float64{}, fmt.Errorf("%w: rect [%g %g %g %g] lies outside page %d, whose visible box is [%g %g %g %g]",
			ErrPlacement, r[0], r[1], r[2], r[3], n, b[0], b[1], b[2], b[3])
	}
	return n, pg, r, nil
}

func blockRect(pg page, a Appearance) [4]float64 {
	if a.Rect != ([4]float64{}) {
		r := a.Rect
		if r[0] > r[2] {
			r[0], r[2] = r[2], r[0]
		}
		if r[1] > r[3] {
			r[1], r[3] = r[3], r[1]
		}
		return r
	}
	mb := pg.box
	dw, dh := DefaultWidth, DefaultHeight
	if a.Paraf {
		dw, dh = ParafWidth, ParafHeight
	}
	// A page smaller than the block plus margins gets a smaller block.
	w := min(dw, mb[2]-mb[0]-2*Margin)
	h := min(dh, mb[3]-mb[1]-2*Margin)
	m := Margin
	if w < 20 || h < 10 {
		w, h, m = mb[2]-mb[0], mb[3]-mb[1], 0
	}
	return [4]float64{mb[2] - m - w, mb[1] + m, mb[2] - m, mb[1] + m + h}
}

// bulan are the Indonesian month names.
var bulan = [...]string{"Januari", "Februari", "Maret", "April", "Mei", "Juni", "Juli", "Agustus", "September", "Oktober", "November", "Desember"}

// FormatTime writes t in loc the Indonesian way, for example
// "26 November 2026 14:05 WITA". A zone without a letter abbreviation is
// written as its UTC offset.
func FormatTime(t time.Time, loc *time.Location) string {
	if loc == nil {
		loc = time.UTC
	}
	t = t.In(loc)
	zone, off := t.Zone()
	if zone == "" || zone[0] == '+' || zone[0] == '-' {
		zone = "UTC" + fmt.Sprintf("%+03d:%02d", off/3600, abs(off%3600)/60)
	}
	return fmt.Sprintf("%d %s %d %02d:%02d %s", t.Day(), bulan[t.Month()-1], t.Year(), t.Hour(), t.Minute(), zone)
}

// block is a drawn signature block: its content stream and the
// embedded fonts it needs beside the standard ones.
type block struct {
	content []byte
	fonts   []*embeddedFont
}

// drawBlock draws the block in a form XObject of size w × h. A line with
// characters outside Latin-1 that DejaVu Sans has is drawn in that font,
// embedded as a subset; other lines keep Helvetica, which needs no
// embedding and keeps the common block as small as it was.
func drawBlock(w, h float64, a Appearance, cert *x509.Certificate, when string) (*block, error) {
	return draw(w, h, a, cert, when, true)
}

// appearanceStream draws the block with the standard 14 fonts only, the
// ones appearanceResources names: characters outside Latin-1 become '?'.
func appearanceStream(w, h float64, a Appearance, cert *x509.Certificate, when string) ([]byte, error) {
	b, err := draw(w, h, a, cert, when, false)
	if err != nil {
		return nil, err
	}
	return b.content, nil
}

// put writes the block as a form XObject of size w × h with the fonts it
// uses and returns a reference to it, for the widget's /AP /N.
func (bl *block) put(u *update, w, h float64) ref {
	num := u.alloc()
	res := appearanceResources()
	fonts := res["Font"].(dict)
	for _, f := range bl.fonts {
		fonts[f.res] = f.put(u)
	}
	u.putStream(num, dict{
		"Type": name("XObject"), "Subtype": name("Form"),
		"BBox":      array{0.0, 0.0, w, h},
		"Resources": res,
	}, bl.content)
	return ref{num, 0}
}

func draw(w, h float64, a Appearance, cert *x509.Certificate, when string, embed bool) (*block, error) {
	who, nip := a.Name, a.NIP
	if who == "" {
		who = cert.Subject.CommonName
	}
	if nip == "" {
		nip = cert.Subject.SerialNumber
	}
	var b bytes.Buffer
	pad := min(6, h/10)
	fmt.Fprintf(&b, "q 1 g 0 0 %s %s re f 0.4 G 0.5 w 0.25 0.25 %s %s re S Q\n", formatReal(w), formatReal(h), formatReal(w-0.5), formatReal(h-0.5))
	textX := pad
	if a.VerifyURL != "" {
		q, err := qrcode.New(a.VerifyURL, qrcode.Medium)
		if err != nil {
			return nil, fmt.Errorf("pades: qr code: %w", err)
		}
		// The bitmap keeps its four-module quiet zone (ISO/IEC 18004
		// §6.3.8), which the white background of the block shows.
		bm := q.Bitmap()
		side := min(h-1, w/2)
		drawQR(&b, bm, 0.5, (h-side)/2, side)
		textX = side
	}
	type line struct {
		font string
		size float64
		text string
	}
	lines := []line{{"F1", 7, Caption}, {"F2", 9, who}}
	if a.Jabatan != "" {
		lines = append(lines, line{"F1", 7, a.Jabatan})
	}
	if nip != "" {
		lines = append(lines, line{"F1", 8, "NIP. " + nip})
	}
	lines = append(lines, line{"F1", 7, when})
	if a.Paraf {
		mark := a.Initials
		if mark == "" {
			mark = initialsOf(who)
		}
		lines = []line{{"F1", 6, "Paraf"}, {"F2", 11, mark}, {"F1", 6, when}}
	}
	avail := w - textX - pad
	step := (h - 2*pad) / float64(len(lines))
	bl := &block{}
	embedded := map[bool]*embeddedFont{}
	b.WriteString("BT 0 g\n")
	for i, l := range lines {
		// Composed, "Nguyễn" is the letters the font has; decomposed it
		// would be base letters and marks.
		text := norm.NFC.String(l.text)
		bold := l.font == "F2"
		font, show, tw := name(l.font), "", 0.0
		if ef, gs, err := embeddedFor(embed, bold, text, embedded); err != nil {
			return nil, err
		} else if ef != nil {
			if embedded[bold] == nil {
				embedded[bold] = ef
				bl.fonts = append(bl.fonts, ef)
			}
			font, show, tw = ef.res, ef.show(gs), ef.width(gs)/1000
		} else {
			enc := winAnsi(text)
			show, tw = "("+escapeLiteral(enc)+")", textWidth(enc, bold)/1000
		}
		size := l.size
		if tw*size > avail && tw > 0 {
			size = max(3, avail/tw)
		}
		size = min(size, step*0.9)
		y := h - pad - step*float64(i) - step*0.75
		fmt.Fprintf(&b, "/%s %s Tf 1 0 0 1 %s %s Tm %s Tj\n", font, formatReal(size), formatReal(textX), formatReal(y), show)
	}
	b.WriteString("ET\n")
	bl.content = b.Bytes()
	return bl, nil
}

// embeddedFor returns the embedded font, the one of the block already in
// use if any, and the glyphs for a line that needs it: one with
// characters outside Latin-1 the font has. It returns nil for a line the
// standard fonts draw as well.
func embeddedFor(embed, bold bool, text string, in map[bool]*embeddedFont) (*embeddedFont, []shapedGlyph, error) {
	if !embed || !beyondLatin1(text) {
		return nil, nil, nil
	}
	ef := in[bold]
	if ef == nil {
		load, res := sansFont, name("F3")
		if bold {
			load, res = boldFont, "F4"
		}
		f, err := load()
		if err != nil {
			return nil, nil, err
		}
		ef = newEmbeddedFont(f, res)
	}
	gs, covered := shape(ef.f, text)
	if covered == 0 {
		return nil, nil, nil
	}
	return ef, gs, nil
}

func beyondLatin1(s string) bool {
	for _, r := range s {
		if r > 0xff {
			return true
		}
	}
	return false
}

// drawQR fills the dark modules as rectangles, one per horizontal run, in
// a side × side square at (x, y).
func drawQR(b *bytes.Buffer, bm [][]bool, x, y, side float64) {
	n := len(bm)
	if n == 0 {
		return
	}
	s := side / float64(n)
	fmt.Fprintf(b, "q 0 g %s 0 0 %s %s %s cm\n", formatReal(s), formatReal(s), formatReal(x), formatReal(y))
	for row, line := range bm {
		for col := 0; col < len(line); {
			if !line[col] {
				col++
				continue
			}
			start := col
			for col < len(line) && line[col] {
				col++
			}
			fmt.Fprintf(b, "%d %d %d 1 re\n", start, n-1-row, col-start)
		}
	}
	b.WriteString("f Q\n")
}

// appearanceResources names the standard 14 fonts the stream uses; they
// need no embedding (ISO 32000-1 §9.6.2.2).
func appearanceResources() dict {
	font := func(base string) dict {
		return dict{"Type": name("Font"), "Subtype": name("Type1"), "BaseFont": name(base), "Encoding": name("WinAnsiEncoding")}
	}
	return dict{"Font": dict{"F1": font("Helvetica"), "F2": font("Helvetica-Bold")}}
}

// winAnsi maps text to WinAnsiEncoding bytes; Latin-1 letters keep their
// code, anything else becomes '?' (drawBlock draws such lines with an
// embedded font instead, where it has the characters).
func winAnsi(s string) []byte {
	var out []byte
	for _, r := range s {
		switch {
		case r >= 0x20 && r < 0x7f, r >= 0xa0 && r <= 0xff:
			out = append(out, byte(r))
		default:
			out = append(out, '?')
		}
	}
	return out
}

func escapeLiteral(b []byte) string {
	var out bytes.Buffer
	for _, c := range b {
		if c == '(' || c == ')' || c == '\\' {
			out.WriteByte('\\')
		}
		out.WriteByte(c)
	}
	return out.String()
}

// initialsOf is the initials of a name as a paraf shows them: the first
// letter of each word that starts with a letter, titles and degrees
// ("Dr.", "M.Si.", "S.H.") left out.
func initialsOf(name string) string {
	var out []rune
	for _, w := range strings.Fields(name) {
		if strings.HasSuffix(w, ".") || strings.HasSuffix(w, ",") && strings.Contains(w, ".") {
			continue // a title or degree
		}
		w = strings.TrimSuffix(w, ",")
		r, _ := utf8.DecodeRuneInString(w)
		if unicode.IsLetter(r) {
			out = append(out, unicode.ToUpper(r))
		}
	}
	if len(out) == 0 {
		return name
	}
	return string(out)
}
