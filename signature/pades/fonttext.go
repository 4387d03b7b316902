package pades

import (
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// A line is drawn with the glyphs of an embedded TrueType font, which has
// no shaping engine behind it in a PDF: the content stream must name the
// glyphs in the order they appear, left to right. shape does the little
// of what a text layout engine does that names need: composition (NFC),
// the contextual forms of Arabic letters, and right-to-left order.

// shapedGlyph is one glyph to draw, in visual order.
type shapedGlyph struct {
	gid uint16
	// text is what the glyph stands for, in logical order, for the
	// /ToUnicode CMap: a presentation form stands for its letter, the
	// lam-alef ligature for both letters.
	text string
}

// shapedChar is a character being shaped: r is drawn, text is read.
type shapedChar struct {
	r     rune
	text  string
	level int
}

// shape lays s out for f. covered counts the characters outside Latin-1
// the font draws; a character the font lacks is drawn as '?', as in the
// standard fonts' WinAnsiEncoding.
func shape(f *ttFont, s string) (glyphs []shapedGlyph, covered int) {
	var chars []shapedChar
	for _, r := range norm.NFC.String(s) {
		if _, ok := f.cmap[r]; !ok && !isFormat(r) {
			// A precomposed letter the font lacks may still be drawn as
			// its base letter and combining marks.
			if d := []rune(norm.NFD.String(string(r))); len(d) > 1 && allIn(f, d) {
				for _, c := range d {
					chars = append(chars, shapedChar{r: c, text: string(c)})
				}
				covered++
				continue
			}
		}
		if _, ok := f.cmap[r]; ok && r > 0xff && !isFormat(r) {
			covered++
		}
		chars = append(chars, shapedChar{r: r, text: string(r)})
	}
	bidiLevels(chars)
	chars = joinArabic(f, chars)
	for _, c := range reorder(chars) {
		if isFormat(c.r) {
			continue
		}
		gid, ok := f.cmap[c.r]
		if !ok {
			gid, c.text = f.cmap['?'], "?"
		}
		glyphs = append(glyphs, shapedGlyph{gid: gid, text: c.text})
	}
	return glyphs, covered
}

func allIn(f *ttFont, rs []rune) bool {
	for _, r := range rs {
		if _, ok := f.cmap[r]; !ok {
			return false
		}
	}
	return true
}

// isFormat reports the invisible controls (ZWJ, ZWNJ, direction marks)
// that steer joining and order but have no glyph of their own.
func isFormat(r rune) bool { return unicode.Is(unicode.Cf, r) }

func isMark(r rune) bool { return unicode.In(r, unicode.Mn, unicode.Me) }

// bidiClass is a reduced Unicode Bidirectional Algorithm class (UAX #9):
// 'R' for right-to-left letters, 'L' for other letters and digits, 'N'
// for neutrals; marks take their base's class.
func bidiClass(r rune) byte {
	switch {
	case unicode.IsDigit(r):
		return 'L'
	case unicode.In(r, unicode.Arabic, unicode.Hebrew, unicode.Syriac, unicode.Thaana, unicode.Nko) && unicode.IsLetter(r):
		return 'R'
	case unicode.IsLetter(r):
		return 'L'
	}
	return 'N'
}

// bidiLevels sets the embedding levels of a single paragraph without
// explicit embeddings: the paragraph takes the direction of its first
// strong character (P2, P3), neutrals between two characters of one
// direction take it and others the paragraph's (N1, N2), and
// left-to-right text inside a right-to-left paragraph goes one level up
// (I2). Names need no more of UAX #9.
func bidiLevels(chars []shapedChar) {
	cls := make([]byte, len(chars))
	para := byte('L')
	for i, c := range chars {
		cls[i] = bidiClass(c.r)
		if isMark(c.r) && i > 0 {
			cls[i] = cls[i-1]
		}
	}
	for _, c := range cls {
		if c != 'N' {
			para = c
			break
		}
	}
	for i := 0; i < len(cls); {
		if cls[i] != 'N' {
			i++
			continue
		}
		j := i
		for j < len(cls) && cls[j] == 'N' {
			j++
		}
		before, after := para, para
		if i > 0 {
			before = cls[i-1]
		}
		if j < len(cls) {
			after = cls[j]
		}
		d := para
		if before == after {
			d = before
		}
		for k := i; k < j; k++ {
			cls[k] = d
		}
		i = j
	}
	for i := range chars {
		switch {
		case para == 'L' && cls[i] == 'R':
			chars[i].level = 1
		case para == 'R' && cls[i] == 'R':
			chars[i].level = 1
		case para == 'R':
			chars[i].level = 2
		}
		if chars[i].level%2 == 1 {
			// The glyph drawn is read as itself, so that one glyph
			// has one text in /ToUnicode.
			if m, ok := mirrored[chars[i].r]; ok {
				chars[i].r, chars[i].text = m, string(m)
			}
		}
	}
}

// mirrored pairs the characters drawn mirrored in right-to-left text
// (BidiMirroring.txt, the ones a name may hold).
var mirrored = map[rune]rune{'(': ')', ')': '(', '[': ']', ']': '[', '{': '}', '}': '{', '<': '>', '>': '<', '«': '»', '»': '«', '‹': '›', '›': '‹'}

// reorder returns chars in visual order (UAX #9 L2): from the highest
// level down to the lowest odd one, every run at that level or above is
// reversed. A base letter and its marks move together, marks after the
// letter, where the font's zero-width marks expect them.
func reorder(chars []shapedChar) []shapedChar {
	type cluster struct {
		chars []shapedChar
		level int
	}
	var cl []cluster
	maxLevel := 0
	for _, c := range chars {
		if isMark(c.r) && len(cl) > 0 {
			cl[len(cl)-1].chars = append(cl[len(cl)-1].chars, c)
			continue
		}
		cl = append(cl, cluster{[]shapedChar{c}, c.level})
		maxLevel = max(maxLevel, c.level)
	}
	for lv := maxLevel; lv >= 1; lv-- {
		for i := 0; i < len(cl); {
			if cl[i].level < lv {
				i++
				continue
			}
			j := i
			for j < len(cl) && cl[j].level >= lv {
				j++
			}
			for a, b := i, j-1; a < b; a, b = a+1, b-1 {
				cl[a], cl[b] = cl[b], cl[a]
			}
			i = j
		}
	}
	out := make([]shapedChar, 0, len(chars))
	for _, c := range cl {
		out = append(out, c.chars...)
	}
	return out
}

func joiningType(r rune) int {
	if isMark(r) {
		return joinT
	}
	for _, j := range joiningRanges {
		if r >= j.lo && r <= j.hi {
			return j.t
		}
	}
	return joinU
}

// joinArabic replaces Arabic letters, in logical order, by the
// presentation form their neighbours call for (ArabicShaping.txt: a
// letter joins the one before it if it joins on its right and that one
// on its left; marks are transparent) and lam followed by alef by their
// ligature. A letter whose forms the font lacks is treated as
// non-joining, so that its neighbours do not reach for it.
func joinArabic(f *ttFont, chars []shapedChar) []shapedChar {
	has := func(r rune) bool {
		_, ok := f.cmap[r]
		return r != 0 && ok
	}
	// Lam-alef first: the pair becomes one right-joining letter.
	var out []shapedChar
	lig := map[int]bool{}
	for i := 0; i < len(chars); i++ {
		c := chars[i]
		if c.r == 0x0644 && i+1 < len(chars) {
			if l, ok := lamAlef[chars[i+1].r]; ok && has(l[0]) && has(l[1]) {
				c.text += chars[i+1].text
				lig[len(out)] = true
				out = append(out, c)
				i++
				continue
			}
		}
		out = append(out, c)
	}
	jt := make([]int, len(out))
	for i, c := range out {
		t := joiningType(c.r)
		fm := arabicForms[c.r]
		switch {
		case lig[i]:
			t = joinR
		case t == joinD && !(has(fm[1]) && has(fm[2]) && has(fm[3])):
			t = joinU
			if has(fm[1]) {
				t = joinR
			}
		case t == joinR && !has(fm[1]):
			t = joinU
		}
		jt[i] = t
	}
	neighbour := func(i, step int) int {
		for i += step; i >= 0 && i < len(out); i += step {
			if jt[i] != joinT {
				return jt[i]
			}
		}
		return joinU
	}
	for i := range out {
		t := jt[i]
		if t != joinR && t != joinD {
			continue
		}
		p := neighbour(i, -1)
		prev := p == joinD || p == joinC
		next := false
		if t == joinD {
			n := neighbour(i, 1)
			next = n == joinR || n == joinD || n == joinC
		}
		if lig[i] {
			form := 0
			if prev {
				form = 1
			}
			out[i].r = lamAlef[alefOf(out[i].text)][form]
			continue
		}
		fm := arabicForms[out[i].r]
		switch {
		case prev && next:
			out[i].r = fm[3]
		case prev:
			out[i].r = fm[1]
		case next:
			out[i].r = fm[2]
		}
	}
	return out
}

// alefOf is the alef of a lam-alef pair's text.
func alefOf(text string) rune {
	rs := []rune(text)
	return rs[len(rs)-1]
}
