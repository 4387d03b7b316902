package pades

import (
	"bytes"
	"compress/zlib"
	"crypto/sha256"
	"fmt"
	"maps"
	"slices"
	"unicode/utf16"
)

// embeddedFont is a TrueType font as one block uses it: the glyphs shown
// and what they stand for. It is written as a Type0 font with a
// CIDFontType2 descendant and Identity-H encoding (ISO 32000-1 §9.7),
// two bytes a glyph, holding a subset of the font whose glyphs are
// numbered in the order they were first shown: a CID is the subset's
// glyph id (/CIDToGIDMap /Identity).
type embeddedFont struct {
	f   *ttFont
	res name
	// order is the font's glyph id of each CID; CID 0 is .notdef.
	order []uint16
	cid   map[uint16]uint16
	// text is the /ToUnicode entry of each CID shown (§9.10.3).
	text map[uint16]string
	// chars maps the characters shown as themselves to their CIDs, for
	// the subset's own cmap.
	chars map[rune]uint16
}

func newEmbeddedFont(f *ttFont, res name) *embeddedFont {
	return &embeddedFont{f: f, res: res, order: []uint16{0}, cid: map[uint16]uint16{0: 0}, text: map[uint16]string{}, chars: map[rune]uint16{}}
}

// width is the advance of gs in 1/1000 em.
func (e *embeddedFont) width(gs []shapedGlyph) float64 {
	w := 0
	for _, g := range gs {
		w += int(e.f.advance[g.gid])
	}
	return float64(w) * 1000 / float64(e.f.unitsPerEm)
}

// show records gs as used and returns the string operand that draws it.
func (e *embeddedFont) show(gs []shapedGlyph) string {
	var b bytes.Buffer
	b.WriteByte('<')
	for _, g := range gs {
		cid, ok := e.cid[g.gid]
		if !ok {
			cid = uint16(len(e.order))
			e.cid[g.gid] = cid
			e.order = append(e.order, g.gid)
		}
		if _, ok := e.text[cid]; !ok {
			e.text[cid] = g.text
		}
		if rs := []rune(g.text); len(rs) == 1 && e.f.cmap[rs[0]] == g.gid {
			e.chars[rs[0]] = cid
		}
		fmt.Fprintf(&b, "%04X", cid)
	}
	b.WriteByte('>')
	return b.String()
}

// put writes the font's objects and returns a reference to the Type0
// font dictionary.
func (e *embeddedFont) put(u *update) ref {
	f := e.f
	// §9.9.2: a subset's name is a tag of six capital letters, the same
	// for the same subset, a plus sign and the font's name.
	sum := sha256.Sum256(fmt.Appendf(nil, "%s %v", f.psName, e.order))
	tag := make([]byte, 6)
	for i := range tag {
		tag[i] = 'A' + sum[i]%26
	}
	base := name(string(tag) + "+" + f.psName)
	scale := func(v int16) float64 { return float64(v) * 1000 / float64(f.unitsPerEm) }

	fileNum, descNum, cidNum, uniNum, fontNum := u.alloc(), u.alloc(), u.alloc(), u.alloc(), u.alloc()
	sub, _ := f.subset(e.order, e.chars)
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	// Writing to a bytes.Buffer cannot fail.
	_, _ = zw.Write(sub)
	_ = zw.Close()
	u.putStream(fileNum, dict{"Filter": name("FlateDecode"), "Length1": int64(len(sub))}, z.Bytes())

	stemV := int64(80)
	if f.weight >= 600 {
		stemV = 140
	}
	// No outline tells the stem width; the values are Adobe's usual
	// estimates for regular and bold.
	desc := dict{
		"Type": name("FontDescriptor"), "FontName": base,
		// §9.8.2: Symbolic (bit 3), the font has glyphs outside the
		// standard Latin character set.
		"Flags":       int64(4),
		"FontBBox":    array{scale(f.bbox[0]), scale(f.bbox[1]), scale(f.bbox[2]), scale(f.bbox[3])},
		"ItalicAngle": f.italic,
		"Ascent":      scale(f.ascent), "Descent": scale(f.descent), "CapHeight": scale(f.capHeight),
		"StemV":     stemV,
		"FontFile2": ref{fileNum, 0},
	}
	if f.weight != 0 {
		desc["FontWeight"] = int64(f.weight)
	}
	u.put(descNum, 0, desc)

	// The CIDs shown are 1 to n-1, consecutive: one run of widths.
	var run array
	for _, g := range e.order[1:] {
		run = append(run, float64(f.advance[g])*1000/float64(f.unitsPerEm))
	}
	w := array{int64(1), run}
	u.put(cidNum, 0, dict{
		"Type": name("Font"), "Subtype": name("CIDFontType2"), "BaseFont": base,
		"CIDSystemInfo":  dict{"Registry": pdfString("Adobe"), "Ordering": pdfString("Identity"), "Supplement": int64(0)},
		"FontDescriptor": ref{descNum, 0},
		"CIDToGIDMap":    name("Identity"),
		"W":              w,
	})
	u.putStream(uniNum, dict{}, toUnicodeCMap(slices.Sorted(maps.Keys(e.text)), e.text))
	u.put(fontNum, 0, dict{
		"Type": name("Font"), "Subtype": name("Type0"), "BaseFont": base,
		"Encoding":        name("Identity-H"),
		"DescendantFonts": array{ref{cidNum, 0}},
		"ToUnicode":       ref{uniNum, 0},
	})
	return ref{fontNum, 0}
}

// toUnicodeCMap maps each CID to its text in UTF-16BE (§9.10.3, and
// Adobe Technical Note #5411 for the CMap's form).
func toUnicodeCMap(gids []uint16, text map[uint16]string) []byte {
	var b bytes.Buffer
	b.WriteString("/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n" +
		"/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n" +
		"/CMapName /Adobe-Identity-UCS def\n/CMapType 2 def\n" +
		"1 begincodespacerange\n<0000> <FFFF>\nendcodespacerange\n")
	// At most 100 entries a section (Technical Note #5014).
	for i := 0; i < len(gids); i += 100 {
		chunk := gids[i:min(i+100, len(gids))]
		fmt.Fprintf(&b, "%d beginbfchar\n", len(chunk))
		for _, g := range chunk {
			fmt.Fprintf(&b, "<%04X> <", g)
			for _, c := range utf16.Encode([]rune(text[g])) {
				fmt.Fprintf(&b, "%04X", c)
			}
			b.WriteString(">\n")
		}
		b.WriteString("endbfchar\n")
	}
	b.WriteString("endcmap\nCMapName currentdict /CMap defineresource pop\nend\nend\n")
	return b.Bytes()
}
