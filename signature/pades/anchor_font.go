package pades

import (
	"sort"
	"strconv"
	"strings"
	"unicode/utf16"
)

// textFont is what reading text needs of a font (ISO 32000-1 §9.6,
// §9.7): how its strings split into codes, what each code means in
// Unicode, and how far each advances.
type textFont struct {
	twoByte bool       // Type0: two-byte codes (Identity-H and the like)
	enc     [256]rune  // simple fonts: code to Unicode; 0 unassigned
	uni     *toUnicode // from /ToUnicode, when there is one
	first   int        // /FirstChar
	widths  []float64  // /Widths, in glyph space
	cid     []cidWidth // /W of a CIDFont, sorted by lo
	dw      float64    // /DW, or /MissingWidth of a simple font
	std     *[95]int16 // Helvetica AFM widths for codes 32 to 126
	// stdWidth is the width of every code of a standard 14 font without
	// /Widths whose metrics this package does not carry.
	stdWidth float64
	scale    float64 // glyph space to text space: 1/1000, or a Type3 /FontMatrix
	// ascent and descent, in text space units (a fraction of the font
	// size), bound the glyph box.
	ascent, descent float64
}

// costFont is what a font read counts against MaxParsedBytes.
const costFont = 2048

type cidWidth struct {
	lo, hi uint32
	w      float64
}

// fallbackFont reads text drawn with a font that is missing or
// unreadable: WinAnsi codes at Helvetica widths.
var fallbackFont = &textFont{enc: winAnsiRunes, std: &helvetica, scale: 0.001, ascent: 0.718, descent: -0.207}

// code splits the next code off b; b is not empty.
func (f *textFont) code(b []byte) (uint32, int) {
	if f.twoByte && len(b) >= 2 {
		return uint32(b[0])<<8 | uint32(b[1]), 2
	}
	return uint32(b[0]), 1
}

// width is the advance of code in text space units, before Tc and Tw.
func (f *textFont) width(code uint32) float64 {
	if f.twoByte {
		// The last few ranges starting at or before code: overlapping
		// ranges are an error in the font, and looking further back would
		// make a hostile /W slow.
		i := sort.Search(len(f.cid), func(i int) bool { return f.cid[i].lo > code })
		for k := i - 1; k >= 0 && k >= i-8; k-- {
			if code <= f.cid[k].hi {
				return f.cid[k].w * f.scale
			}
		}
		return f.dw * f.scale
	}
	if i := int(code) - f.first; i >= 0 && i < len(f.widths) {
		return f.widths[i] * f.scale
	}
	switch {
	case f.std != nil && code >= 32 && code <= 126:
		return float64(f.std[code-32]) * f.scale
	case f.std != nil:
		return 556 * f.scale
	case f.stdWidth > 0:
		return f.stdWidth * f.scale
	}
	return f.dw * f.scale
}

// text is what code stands for in Unicode; U+FFFD when the font does not
// say.
func (f *textFont) text(code uint32) string {
	if f.uni != nil {
		if s, ok := f.uni.lookup(code); ok {
			return s
		}
	}
	if !f.twoByte && code < 256 && f.enc[code] != 0 {
		if r := f.enc[code]; r < 128 {
			return asciiText[r : r+1] // no allocation per glyph
		}
		return string(f.enc[code])
	}
	return "\uFFFD"
}

// asciiText holds every ASCII character, to slice one-character strings
// from.
const asciiText = "\x00\x01\x02\x03\x04\x05\x06\x07\x08\t\n\x0b\x0c\r\x0e\x0f" +
	"\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f" +
	" !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~\x7f"

// standard14 are the fonts every viewer has (§9.6.2.2), with the AFM
// widths this package knows, or the width it assumes for all codes.
func standard14(base string) (*[95]int16, float64, bool) {
	switch base {
	case "Helvetica", "Helvetica-Oblique", "Arial", "Arial,Italic":
		return &helvetica, 0, true
	case "Helvetica-Bold", "Helvetica-BoldOblique", "Arial,Bold", "Arial,BoldItalic":
		return &helveticaBold, 0, true
	case "Courier", "Courier-Bold", "Courier-Oblique", "Courier-BoldOblique":
		return nil, 600, true // monospaced
	case "Times-Roman", "Times-Bold", "Times-Italic", "Times-BoldItalic", "Symbol", "ZapfDingbats":
		return nil, 500, true
	}
	return nil, 0, false
}

// loadFont reads a font dictionary. What it cannot read falls back to
// defaults rather than failing: a wrong width moves glyphs a little, and
// a failure that came from the budget is reported by FindAnchor anyway.
func (x *textExtractor) loadFont(fd dict) *textFont {
	d := x.d
	// The font's heap, mostly its encoding table; over budget, the error
	// stays in the budget and FindAnchor reports it.
	_ = d.bud.parse(costFont)
	f := &textFont{enc: standardRunes, scale: 0.001, ascent: 0.8, descent: -0.2, dw: 0}
	base, _ := fd["BaseFont"].(name)
	bs := string(base)
	if i := strings.IndexByte(bs, '+'); i == 6 {
		bs = bs[7:] // subset tag, §9.6.4
	}
	desc := fd["FontDescriptor"]
	switch fd["Subtype"] {
	case name("Type0"):
		f.twoByte, f.dw = true, 1000
		if kids, err := d.arrayOf(fd["DescendantFonts"], "descendant fonts"); err == nil && len(kids) > 0 {
			if cf, err := d.dictOf(kids[0], "CIDFont"); err == nil {
				if dw, ok := x.num(cf["DW"]); ok {
					f.dw = dw
				}
				f.cid = x.cidWidths(cf["W"])
				desc = cf["FontDescriptor"]
			}
		}
	case name("Type3"):
		if m, err := d.arrayOf(fd["FontMatrix"], "font matrix"); err == nil && len(m) == 6 {
			if s, ok := x.num(m[0]); ok && s != 0 {
				f.scale = s
			}
		}
		f.encoding(x, fd["Encoding"])
		f.simpleWidths(x, fd)
	default:
		if std, w, ok := standard14(bs); ok {
			f.std, f.stdWidth = std, w
			if std != nil {
				f.ascent, f.descent = 0.718, -0.207
			}
		}
		f.encoding(x, fd["Encoding"])
		f.simpleWidths(x, fd)
	}
	if fdd, err := d.dictOf(desc, "font descriptor"); err == nil && fdd != nil {
		if a, ok := x.num(fdd["Ascent"]); ok && a > 0 && a < 2000 {
			f.ascent = a / 1000
		}
		if dsc, ok := x.num(fdd["Descent"]); ok && dsc <= 0 && dsc > -1000 {
			f.descent = dsc / 1000
		}
		if mw, ok := x.num(fdd["MissingWidth"]); ok && !f.twoByte {
			f.dw = mw
		}
	}
	if !f.twoByte && f.std == nil && f.stdWidth == 0 && f.widths == nil && f.dw == 0 {
		f.dw = 500 // no metrics at all: glyphs still advance
	}
	if tu, err := d.resolve(fd["ToUnicode"]); err == nil {
		if s, ok := tu.(*stream); ok {
			if data, err := x.streamData(s); err == nil {
				f.uni = parseToUnicode(d, data)
			}
		}
	}
	return f
}

func (x *textExtractor) num(v any) (float64, bool) {
	o, err := x.d.resolve(v)
	if err != nil {
		return 0, false
	}
	return number(o)
}

// encoding applies /Encoding (§9.6.6): a base encoding by name, or a
// dictionary with /BaseEncoding and /Differences.
func (f *textFont) encoding(x *textExtractor, v any) {
	o, err := x.d.resolve(v)
	if err != nil {
		return
	}
	byName := func(n any) {
		switch n {
		case name("WinAnsiEncoding"):
			f.enc = winAnsiRunes
		case name("MacRomanEncoding"):
			f.enc = macRomanRunes
		case name("StandardEncoding"):
			f.enc = standardRunes
		}
	}
	switch e := o.(type) {
	case name:
		byName(e)
	case dict:
		byName(e["BaseEncoding"])
		diffs, err := x.d.arrayOf(e["Differences"], "/Differences")
		if err != nil {
			return
		}
		code := -1
		for _, dv := range diffs {
			switch dv := dv.(type) {
			case int64:
				code = int(dv)
			case name:
				if code >= 0 && code < 256 {
					if r, ok := glyphRune(string(dv)); ok {
						f.enc[code] = r
					}
				}
				code++
			}
		}
	}
}

// glyphRune maps a glyph name to Unicode: the Latin names of the Adobe
// Glyph List, and uniXXXX and uXXXX[XX] names.
func glyphRune(n string) (rune, bool) {
	if r, ok := glyphRunes[n]; ok {
		return r, true
	}
	if i := strings.IndexByte(n, '.'); i > 0 {
		n = n[:i] // "a.sc", "one.oldstyle"
		if r, ok := glyphRunes[n]; ok {
			return r, true
		}
	}
	hexRune := func(h string) (rune, bool) {
		v, err := strconv.ParseUint(h, 16, 32)
		if err != nil || v > 0x10FFFF || (v >= 0xD800 && v < 0xE000) {
			return 0, false
		}
		return rune(v), true
	}
	switch {
	case strings.HasPrefix(n, "uni") && len(n) == 7:
		return hexRune(n[3:])
	case strings.HasPrefix(n, "u") && len(n) >= 5 && len(n) <= 7:
		return hexRune(n[1:])
	}
	return 0, false
}

// simpleWidths reads /FirstChar and /Widths.
func (f *textFont) simpleWidths(x *textExtractor, fd dict) {
	ws, err := x.d.arrayOf(fd["Widths"], "/Widths")
	if err != nil || len(ws) == 0 {
		return
	}
	first, _ := x.num(fd["FirstChar"])
	if first < 0 || first > 255 {
		return
	}
	f.first = int(first)
	f.widths = make([]float64, 0, min(len(ws), 256))
	for _, w := range ws[:min(len(ws), 256)] {
		n, _ := x.num(w)
		f.widths = append(f.widths, n)
	}
}

// cidWidths reads a CIDFont's /W (§9.7.4.3): "c [w1 w2 …]" and
// "c_first c_last w" entries, kept as ranges so that a hostile range
// costs nothing to store.
func (x *textExtractor) cidWidths(v any) []cidWidth {
	a, err := x.d.arrayOf(v, "/W")
	if err != nil {
		return nil
	}
	var out []cidWidth
	for i := 0; i < len(a); {
		lo, ok := x.num(a[i])
		if !ok || lo < 0 || lo > 0xFFFF {
			break
		}
		if i+1 >= len(a) {
			break
		}
		next, _ := x.d.resolve(a[i+1])
		if ws, ok := next.(array); ok {
			for k, w := range ws {
				n, _ := x.num(w)
				c := uint32(lo) + uint32(k)
				out = append(out, cidWidth{c, c, n})
			}
			i += 2
			continue
		}
		hi, ok1 := x.num(a[i+1])
		if i+2 >= len(a) {
			break
		}
		w, ok2 := x.num(a[i+2])
		if !ok1 || !ok2 || hi < lo || hi > 0xFFFF {
			break
		}
		out = append(out, cidWidth{uint32(lo), uint32(hi), w})
		i += 3
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].lo < out[j].lo })
	return out
}

// toUnicode is a ToUnicode CMap (§9.10.3): single codes and ranges.
type toUnicode struct {
	single map[uint32]string
	ranges []uniRange
}

type uniRange struct {
	lo, hi uint32
	dst    []uint16 // UTF-16 of lo; the last unit counts up
	each   []string // or one string per code
}

func (t *toUnicode) lookup(code uint32) (string, bool) {
	if s, ok := t.single[code]; ok {
		return s, true
	}
	i := sort.Search(len(t.ranges), func(i int) bool { return t.ranges[i].lo > code })
	for j := i - 1; j >= 0 && j >= i-8; j-- {
		r := &t.ranges[j]
		if code > r.hi {
			continue
		}
		k := code - r.lo
		if r.each != nil {
			if int(k) < len(r.each) {
				return r.each[k], true
			}
			return "", false
		}
		u := append([]uint16(nil), r.dst...)
		u[len(u)-1] += uint16(k)
		return string(utf16.Decode(u)), true
	}
	return "", false
}

func utf16String(b []byte) string {
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		u = append(u, uint16(b[i])<<8|uint16(b[i+1]))
	}
	return string(utf16.Decode(u))
}

func codeOf(b []byte) (uint32, bool) {
	if len(b) == 0 || len(b) > 4 {
		return 0, false
	}
	var v uint32
	for _, c := range b {
		v = v<<8 | uint32(c)
	}
	return v, true
}

// parseToUnicode reads the bfchar and bfrange sections of a CMap; the
// rest of its PostScript is skipped. What does not parse is left out.
func parseToUnicode(d *document, data []byte) *toUnicode {
	t := &toUnicode{single: map[uint32]string{}}
	l := d.lexer(data, 0)
	var ops []any
	for {
		l.skip()
		if l.pos >= len(l.b) {
			break
		}
		c := l.b[l.pos]
		if c == '/' || c == '(' || c == '<' || c == '[' || (c >= '0' && c <= '9') {
			at := l.pos
			v, err := l.object(0)
			if err != nil {
				if l.bud != nil && l.bud.err != nil {
					return t
				}
				// Syntax the PDF lexer does not take: pass a byte. A
				// failed read may have scanned to the end of the data
				// (an unterminated string), and so is charged as if it
				// had, or a run of "(" would be read to the end once for
				// each.
				scanned := len(l.b) - at
				l.pos = at + 1
				if l.charge(scanned) != nil {
					return t
				}
				continue
			}
			if len(ops) < maxOperands {
				ops = append(ops, v)
			}
			continue
		}
		if isDelim(c) {
			l.pos++
			continue
		}
		switch kw := l.keyword(); kw {
		case "":
			if l.bud != nil && l.bud.err != nil {
				return t
			}
			l.pos++
		case "endbfchar":
			for i := 0; i+1 < len(ops); i += 2 {
				src, _ := ops[i].(pdfString)
				dst, _ := ops[i+1].(pdfString)
				if code, ok := codeOf(src); ok && len(dst) > 0 {
					if l.charge(costEntry) != nil {
						return t
					}
					t.single[code] = utf16String(dst)
				}
			}
			ops = ops[:0]
		case "endbfrange":
			for i := 0; i+2 < len(ops); i += 3 {
				s1, _ := ops[i].(pdfString)
				s2, _ := ops[i+1].(pdfString)
				lo, ok1 := codeOf(s1)
				hi, ok2 := codeOf(s2)
				if !ok1 || !ok2 || hi < lo || hi-lo > 0xFFFF {
					continue
				}
				r := uniRange{lo: lo, hi: hi}
				switch dst := ops[i+2].(type) {
				case pdfString:
					if len(dst) < 2 {
						continue
					}
					for k := 0; k+1 < len(dst); k += 2 {
						r.dst = append(r.dst, uint16(dst[k])<<8|uint16(dst[k+1]))
					}
				case array:
					for _, e := range dst {
						s, _ := e.(pdfString)
						r.each = append(r.each, utf16String(s))
					}
					if r.each == nil {
						continue
					}
				default:
					continue
				}
				t.ranges = append(t.ranges, r)
			}
			ops = ops[:0]
		default:
			ops = ops[:0]
		}
	}
	sort.SliceStable(t.ranges, func(i, j int) bool { return t.ranges[i].lo < t.ranges[j].lo })
	return t
}
