package pades

import (
	"embed"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
)

// The fonts for names outside Latin-1 are built into the binary rather
// than read from the terminal's disk, so that every terminal draws the
// same block whatever fonts its system has (a signature's appearance
// must not depend on where it was made). DejaVu Sans covers Latin
// Extended (Vietnamese, the transliteration of Arabic names) and Arabic,
// Jawi included; its licence is in fonts/LICENSE.
//
//go:embed fonts/DejaVuSans.ttf fonts/DejaVuSans-Bold.ttf
var fontFiles embed.FS

var (
	sansFont = sync.OnceValues(func() (*ttFont, error) { return loadFont("fonts/DejaVuSans.ttf", "DejaVuSans") })
	boldFont = sync.OnceValues(func() (*ttFont, error) { return loadFont("fonts/DejaVuSans-Bold.ttf", "DejaVuSans-Bold") })
)

func loadFont(path, psName string) (*ttFont, error) {
	b, err := fontFiles.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("pades: font %s: %w", path, err)
	}
	f, err := parseTrueType(b)
	if err != nil {
		return nil, fmt.Errorf("pades: font %s: %w", path, err)
	}
	f.psName = psName
	return f, nil
}

// ttFont is the part of a TrueType font (the OpenType spec, "glyf"
// flavour) needed to measure text, map characters to glyphs and write a
// subset.
type ttFont struct {
	psName     string
	tables     map[string][]byte
	unitsPerEm int
	numGlyphs  int
	// numHMetrics is hhea's numberOfHMetrics: glyphs from there on
	// share the last advance and have only a side bearing in hmtx.
	numHMetrics int
	advance     []uint16 // per glyph, in font units
	cmap        map[rune]uint16
	loca        []uint32 // numGlyphs+1 offsets into glyf
	bbox        [4]int16
	ascent      int16
	descent     int16
	capHeight   int16
	italic      float64
	weight      uint16
}

var errFont = errors.New("malformed TrueType font")

func u16(b []byte, off int) (uint16, bool) {
	if off < 0 || off+2 > len(b) {
		return 0, false
	}
	return binary.BigEndian.Uint16(b[off:]), true
}

func u32(b []byte, off int) (uint32, bool) {
	if off < 0 || off+4 > len(b) {
		return 0, false
	}
	return binary.BigEndian.Uint32(b[off:]), true
}

func parseTrueType(b []byte) (*ttFont, error) {
	f := &ttFont{tables: map[string][]byte{}}
	n, ok := u16(b, 4)
	if !ok {
		return nil, errFont
	}
	for i := range int(n) {
		rec := 12 + 16*i
		if rec+16 > len(b) {
			return nil, errFont
		}
		off, _ := u32(b, rec+8)
		length, _ := u32(b, rec+12)
		if uint64(off)+uint64(length) > uint64(len(b)) {
			return nil, fmt.Errorf("%w: table %q out of range", errFont, b[rec:rec+4])
		}
		f.tables[string(b[rec:rec+4])] = b[off : off+length]
	}
	for _, t := range []string{"head", "hhea", "maxp", "hmtx", "loca", "glyf", "cmap"} {
		if f.tables[t] == nil {
			return nil, fmt.Errorf("%w: no %s table", errFont, t)
		}
	}
	head, hhea := f.tables["head"], f.tables["hhea"]
	if len(head) < 54 || len(hhea) < 36 || len(f.tables["maxp"]) < 6 {
		return nil, errFont
	}
	upem, _ := u16(head, 18)
	if upem == 0 {
		return nil, fmt.Errorf("%w: unitsPerEm 0", errFont)
	}
	f.unitsPerEm = int(upem)
	for i := range 4 {
		v, _ := u16(head, 36+2*i)
		f.bbox[i] = int16(v)
	}
	asc, _ := u16(hhea, 4)
	desc, _ := u16(hhea, 6)
	f.ascent, f.descent, f.capHeight = int16(asc), int16(desc), int16(asc)
	if os2 := f.tables["OS/2"]; len(os2) >= 90 {
		if v, _ := u16(os2, 0); v >= 2 {
			c, _ := u16(os2, 88)
			f.capHeight = int16(c)
		}
		f.weight, _ = u16(os2, 4)
	}
	if post := f.tables["post"]; len(post) >= 8 {
		v, _ := u32(post, 4)
		f.italic = float64(int32(v)) / 65536
	}
	ng, _ := u16(f.tables["maxp"], 4)
	f.numGlyphs = int(ng)
	if err := f.parseMetrics(); err != nil {
		return nil, err
	}
	if err := f.parseLoca(); err != nil {
		return nil, err
	}
	if err := f.parseCmap(); err != nil {
		return nil, err
	}
	return f, nil
}

func (f *ttFont) parseMetrics() error {
	nh, _ := u16(f.tables["hhea"], 34)
	hmtx := f.tables["hmtx"]
	if nh == 0 || int(nh) > f.numGlyphs || len(hmtx) < 4*int(nh) {
		return fmt.Errorf("%w: hmtx", errFont)
	}
	if len(hmtx) < 4*int(nh)+2*(f.numGlyphs-int(nh)) {
		return fmt.Errorf("%w: hmtx", errFont)
	}
	f.numHMetrics = int(nh)
	f.advance = make([]uint16, f.numGlyphs)
	for g := range f.numGlyphs {
		i := min(g, int(nh)-1)
		f.advance[g], _ = u16(hmtx, 4*i)
	}
	return nil
}

func (f *ttFont) parseLoca() error {
	long, _ := u16(f.tables["head"], 50)
	loca, glyf := f.tables["loca"], f.tables["glyf"]
	f.loca = make([]uint32, f.numGlyphs+1)
	for g := range f.loca {
		var v uint32
		var ok bool
		if long == 1 {
			v, ok = u32(loca, 4*g)
		} else {
			var s uint16
			s, ok = u16(loca, 2*g)
			v = 2 * uint32(s)
		}
		if !ok || int(v) > len(glyf) || (g > 0 && v < f.loca[g-1]) {
			return fmt.Errorf("%w: loca", errFont)
		}
		f.loca[g] = v
	}
	return nil
}

// parseCmap reads the Windows Unicode subtable: format 12 (full
// repertoire) where present, else format 4 (BMP).
func (f *ttFont) parseCmap() error {
	c := f.tables["cmap"]
	n, _ := u16(c, 2)
	var sub4, sub12 []byte
	for i := range int(n) {
		plat, _ := u16(c, 4+8*i)
		enc, _ := u16(c, 6+8*i)
		off, ok := u32(c, 8+8*i)
		if !ok || int(off) >= len(c) {
			return fmt.Errorf("%w: cmap", errFont)
		}
		format, _ := u16(c, int(off))
		switch {
		case format == 12 && (plat == 3 && enc == 10 || plat == 0):
			sub12 = c[off:]
		case format == 4 && (plat == 3 && enc == 1 || plat == 0):
			sub4 = c[off:]
		}
	}
	f.cmap = map[rune]uint16{}
	switch {
	case sub12 != nil:
		groups, _ := u32(sub12, 12)
		if 16+12*uint64(groups) > uint64(len(sub12)) {
			return fmt.Errorf("%w: cmap format 12", errFont)
		}
		for i := range int(groups) {
			start, _ := u32(sub12, 16+12*i)
			end, _ := u32(sub12, 20+12*i)
			gid, _ := u32(sub12, 24+12*i)
			if end < start || end > 0x10ffff || end-start > 0x10000 {
				return fmt.Errorf("%w: cmap format 12 group", errFont)
			}
			for r := start; r <= end; r++ {
				if g := gid + r - start; g < uint32(f.numGlyphs) {
					f.cmap[rune(r)] = uint16(g)
				}
			}
		}
	case sub4 != nil:
		return f.parseCmap4(sub4)
	default:
		return fmt.Errorf("%w: no Unicode cmap", errFont)
	}
	return nil
}

func (f *ttFont) parseCmap4(s []byte) error {
	segX2, ok := u16(s, 6)
	seg := int(segX2 / 2)
	if !ok || 16+8*seg > len(s) {
		return fmt.Errorf("%w: cmap format 4", errFont)
	}
	ends, starts, deltas, ranges := 14, 16+2*seg, 16+4*seg, 16+6*seg
	for i := range seg {
		end, _ := u16(s, ends+2*i)
		start, _ := u16(s, starts+2*i)
		delta, _ := u16(s, deltas+2*i)
		ro, _ := u16(s, ranges+2*i)
		for c := uint32(start); c <= uint32(end) && c != 0xffff; c++ {
			var g uint16
			if ro == 0 {
				g = uint16(c) + delta
			} else {
				v, ok := u16(s, ranges+2*i+int(ro)+2*int(c-uint32(start)))
				if !ok {
					return fmt.Errorf("%w: cmap format 4 glyph array", errFont)
				}
				if v != 0 {
					g = v + delta
				}
			}
			if g != 0 && int(g) < f.numGlyphs {
				f.cmap[rune(c)] = g
			}
		}
	}
	return nil
}

// glyph returns the outline data of g, empty for a glyph without one.
func (f *ttFont) glyph(g uint16) []byte {
	if int(g) >= f.numGlyphs {
		return nil
	}
	return f.tables["glyf"][f.loca[g]:f.loca[g+1]]
}

// componentRefs returns the offsets in a composite glyph's data d of
// its components' glyph ids (OpenType "glyf" table, composite glyph
// description); none for a simple glyph.
func componentRefs(d []byte) []int {
	if nc, ok := u16(d, 0); !ok || int16(nc) >= 0 {
		return nil
	}
	var out []int
	for off := 10; ; {
		flags, ok1 := u16(d, off)
		_, ok2 := u16(d, off+2)
		if !ok1 || !ok2 {
			return out
		}
		out = append(out, off+2)
		off += 4
		if flags&0x0001 != 0 { // ARG_1_AND_2_ARE_WORDS
			off += 4
		} else {
			off += 2
		}
		switch {
		case flags&0x0008 != 0: // WE_HAVE_A_SCALE
			off += 2
		case flags&0x0040 != 0: // WE_HAVE_AN_X_AND_Y_SCALE
			off += 4
		case flags&0x0080 != 0: // WE_HAVE_A_TWO_BY_TWO
			off += 8
		}
		if flags&0x0020 == 0 { // MORE_COMPONENTS
			return out
		}
	}
}

// components lists the glyphs a composite glyph is built from.
func (f *ttFont) components(g uint16) []uint16 {
	d := f.glyph(g)
	var out []uint16
	for _, off := range componentRefs(d) {
		c, _ := u16(d, off)
		out = append(out, c)
	}
	return out
}

// lsb is the left side bearing of glyph g.
func (f *ttFont) lsb(g uint16) uint16 {
	hmtx := f.tables["hmtx"]
	if int(g) < f.numHMetrics {
		v, _ := u16(hmtx, 4*int(g)+2)
		return v
	}
	v, _ := u16(hmtx, 4*f.numHMetrics+2*(int(g)-f.numHMetrics))
	return v
}

// subset writes a TrueType font with the glyphs of order only,
// renumbered: its glyph i is the font's glyph order[i], and order[0] must
// be 0, .notdef. The glyphs composites are built from follow, numbered
// on; the returned order lists them too. cmap maps the characters shown
// to their new glyph ids, for readers that look there.
func (f *ttFont) subset(order []uint16, cmap map[rune]uint16) ([]byte, []uint16) {
	order = slices.Clone(order)
	newID := make(map[uint16]uint16, len(order))
	for i, g := range order {
		newID[g] = uint16(i)
	}
	for i := 0; i < len(order) && len(order) < 0xffff; i++ {
		for _, c := range f.components(order[i]) {
			if _, ok := newID[c]; !ok && int(c) < f.numGlyphs {
				newID[c] = uint16(len(order))
				order = append(order, c)
			}
		}
	}
	var glyf, loca, hmtx []byte
	for _, g := range order {
		loca = binary.BigEndian.AppendUint32(loca, uint32(len(glyf)))
		d := slices.Clone(f.glyph(g))
		for _, off := range componentRefs(d) {
			c, _ := u16(d, off)
			binary.BigEndian.PutUint16(d[off:], newID[c])
		}
		glyf = append(glyf, d...)
		for len(glyf)%4 != 0 {
			glyf = append(glyf, 0)
		}
		var adv uint16
		if int(g) < f.numGlyphs {
			adv = f.advance[g]
		}
		hmtx = binary.BigEndian.AppendUint16(hmtx, adv)
		hmtx = binary.BigEndian.AppendUint16(hmtx, f.lsb(g))
	}
	loca = binary.BigEndian.AppendUint32(loca, uint32(len(glyf)))
	head := slices.Clone(f.tables["head"])
	binary.BigEndian.PutUint32(head[8:], 0)  // checkSumAdjustment, set below
	binary.BigEndian.PutUint16(head[50:], 1) // indexToLocFormat: long
	hhea := slices.Clone(f.tables["hhea"])
	binary.BigEndian.PutUint16(hhea[34:], uint16(len(order))) // numberOfHMetrics
	maxp := slices.Clone(f.tables["maxp"])
	binary.BigEndian.PutUint16(maxp[4:], uint16(len(order))) // numGlyphs
	tables := map[string][]byte{
		"cmap": cmap4(cmap), "glyf": glyf, "head": head, "hhea": hhea,
		"hmtx": hmtx, "loca": loca, "maxp": maxp,
	}
	// The hinting programs, which glyph instructions may call.
	for _, t := range []string{"cvt ", "fpgm", "prep"} {
		if b := f.tables[t]; b != nil {
			tables[t] = b
		}
	}
	out := writeSfnt(tables)
	adj := 0xB1B0AFBA - checksum(out)
	headOff := sfntOffset(out, "head")
	binary.BigEndian.PutUint32(out[headOff+8:], adj)
	return out, order
}

// cmap4 is a cmap table with one (3,1) format 4 subtable, a segment per
// BMP character.
func cmap4(m map[rune]uint16) []byte {
	var chars []rune
	for r := range m {
		if r < 0xffff {
			chars = append(chars, r)
		}
	}
	slices.Sort(chars)
	seg := len(chars) + 1
	var s []byte
	put := func(v uint16) { s = binary.BigEndian.AppendUint16(s, v) }
	search, sel := 1, 0
	for search*2 <= seg {
		search *= 2
		sel++
	}
	put(4)
	put(uint16(16 + 8*seg))
	put(0)
	put(uint16(2 * seg))
	put(uint16(2 * search))
	put(uint16(sel))
	put(uint16(2*seg - 2*search))
	for _, c := range chars {
		put(uint16(c))
	}
	put(0xffff)
	put(0)
	for _, c := range chars {
		put(uint16(c))
	}
	put(0xffff)
	for _, c := range chars {
		put(m[c] - uint16(c))
	}
	put(1)
	for range seg {
		put(0)
	}
	hdr := []byte{0, 0, 0, 1, 0, 3, 0, 1, 0, 0, 0, 12}
	return append(hdr, s...)
}

func checksum(b []byte) uint32 {
	var sum uint32
	for i := 0; i < len(b); i += 4 {
		var w [4]byte
		copy(w[:], b[i:min(i+4, len(b))])
		sum += binary.BigEndian.Uint32(w[:])
	}
	return sum
}

func writeSfnt(tables map[string][]byte) []byte {
	tags := make([]string, 0, len(tables))
	for t := range tables {
		tags = append(tags, t)
	}
	slices.Sort(tags)
	n := len(tags)
	search, sel := 1, 0
	for search*2 <= n {
		search *= 2
		sel++
	}
	out := []byte{0, 1, 0, 0}
	out = binary.BigEndian.AppendUint16(out, uint16(n))
	out = binary.BigEndian.AppendUint16(out, uint16(16*search))
	out = binary.BigEndian.AppendUint16(out, uint16(sel))
	out = binary.BigEndian.AppendUint16(out, uint16(16*n-16*search))
	off := 12 + 16*n
	for _, t := range tags {
		b := tables[t]
		out = append(out, t...)
		out = binary.BigEndian.AppendUint32(out, checksum(b))
		out = binary.BigEndian.AppendUint32(out, uint32(off))
		out = binary.BigEndian.AppendUint32(out, uint32(len(b)))
		off += (len(b) + 3) &^ 3
	}
	for _, t := range tags {
		out = append(out, tables[t]...)
		for len(out)%4 != 0 {
			out = append(out, 0)
		}
	}
	return out
}

// sfntOffset is the offset of table tag in a font writeSfnt wrote.
func sfntOffset(b []byte, tag string) int {
	n, _ := u16(b, 4)
	for i := range int(n) {
		rec := 12 + 16*i
		if string(b[rec:rec+4]) == tag {
			off, _ := u32(b, rec+8)
			return int(off)
		}
	}
	return 0
}
