package pades

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"
)

// Bounds on what Verify reads beyond Limits: a letter carries a handful
// of signatures, each of which costs a hash of the file.
const (
	maxFieldNodes    = 4096 // form field dictionaries visited
	maxSignatures    = 32   // signature dictionaries verified
	maxByteRangeKeys = 256  // "/ByteRange" texts looked at for unreferenced signatures
)

// sigField is a signature field's value: the signature dictionary, and
// where it stands in the file.
type sigField struct {
	name string // the field's full name (§12.7.3.2)
	sig  dict
	// off is the byte offset of the dictionary's object; -1 when it is
	// not an object of its own in the file, where says why.
	off   int
	where string
}

// signatureFields returns the values of the signature fields of the
// AcroForm (§12.7.2, §12.7.4.5), in the order of the field tree. They,
// and not a scan for /Type /Sig, are what a viewer shows as the
// document's signatures, and a hostile file may hold dictionaries
// nothing refers to (unreferencedRanges reports those).
func (d *document) signatureFields() ([]sigField, error) {
	_, cat, err := d.catalog()
	if err != nil {
		return nil, err
	}
	if cat["AcroForm"] == nil {
		return nil, nil
	}
	acro, err := d.dictOf(cat["AcroForm"], "AcroForm")
	if err != nil {
		return nil, err
	}
	fields, err := d.arrayOf(acro["Fields"], "AcroForm /Fields")
	if err != nil {
		return nil, err
	}
	w := &fieldWalk{d: d, seen: map[ref]bool{}, taken: map[ref]bool{}}
	for _, f := range fields {
		if err := w.walk(f, "", nil, 0); err != nil {
			return nil, err
		}
	}
	return w.out, nil
}

// fieldWalk walks the field tree, each node once.
type fieldWalk struct {
	d     *document
	seen  map[ref]bool // field nodes visited
	taken map[ref]bool // signature dictionaries found
	nodes int
	out   []sigField
}

func (w *fieldWalk) walk(v any, parent string, ft any, depth int) error {
	if depth > maxDepth {
		return malformed("form fields nested deeper than %d", maxDepth)
	}
	if r, ok := v.(ref); ok {
		if w.seen[r] {
			return nil // a loop, or a node listed twice
		}
		w.seen[r] = true
	}
	if w.nodes++; w.nodes > maxFieldNodes {
		return fmt.Errorf("%w: more than %d form fields", ErrTooComplex, maxFieldNodes)
	}
	node, err := w.d.dictOf(v, "form field")
	if err != nil {
		return err
	}
	full := parent
	if t, ok := node["T"].(pdfString); ok {
		if full != "" {
			full += "."
		}
		full += decodeText(t)
	}
	// §12.7.3.1: the field type is inheritable.
	if x, ok := node["FT"]; ok {
		ft = x
	}
	if ft == name("Sig") && node["V"] != nil {
		if err := w.take(full, node["V"]); err != nil {
			return err
		}
	}
	kids, err := w.d.arrayOf(node["Kids"], "form field /Kids")
	if err != nil {
		return err
	}
	for _, k := range kids {
		if err := w.walk(k, full, ft, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// take records the signature dictionary v of the field named field. A
// dictionary that is not an object of its own in the file cannot have a
// byte range that leaves out exactly its /Contents; it is recorded so
// that it is reported, not dropped.
func (w *fieldWalk) take(field string, v any) error {
	r, indirect := v.(ref)
	if indirect && w.taken[r] {
		return nil // another widget of the same field
	}
	if len(w.out) == maxSignatures {
		return fmt.Errorf("%w: more than %d signatures", ErrTooComplex, maxSignatures)
	}
	f := sigField{name: field, off: -1}
	sig, err := w.d.dictOf(v, "signature dictionary")
	switch {
	case w.d.bud.err != nil:
		return w.d.bud.err
	case err != nil:
		f.sig, f.where = dict{}, err.Error()
	case !indirect:
		f.sig, f.where = sig, "the signature dictionary is not an indirect object"
	case w.d.xref[r.num].kind != 1:
		f.sig, f.where = sig, "the signature dictionary is not stored in the file itself (it is in an object stream)"
	default:
		f.sig, f.off = sig, int(w.d.xref[r.num].off)
		w.taken[r] = true
	}
	w.out = append(w.out, f)
	return nil
}

// contentsSpan returns where the /Contents value of the dictionary object
// at off stands in the file: the offset of its first byte and just past
// its last. The dictionary must have exactly one /Contents and one
// /ByteRange: with two, readers differ on which counts.
func (d *document) contentsSpan(off int) ([2]int, error) {
	l := d.lexer(d.b, off)
	if _, ok := l.integer(); !ok {
		return [2]int{}, malformed("no object at offset %d", off)
	}
	if _, ok := l.integer(); !ok {
		return [2]int{}, malformed("no object at offset %d", off)
	}
	if err := l.expect("obj"); err != nil {
		return [2]int{}, err
	}
	l.skip()
	if !bytes.HasPrefix(d.b[l.pos:], []byte("<<")) {
		return [2]int{}, malformed("object at offset %d is not a dictionary", off)
	}
	l.pos += 2
	var span [2]int
	contents, ranges := 0, 0
	for {
		l.skip()
		if l.pos+1 < len(d.b) && d.b[l.pos] == '>' && d.b[l.pos+1] == '>' {
			break
		}
		if l.pos >= len(d.b) || d.b[l.pos] != '/' {
			return [2]int{}, malformed("dictionary key is not a name at offset %d", l.pos)
		}
		k, err := l.name()
		if err != nil {
			return [2]int{}, err
		}
		l.skip()
		start := l.pos
		if _, err := l.object(1); err != nil {
			return [2]int{}, err
		}
		switch k {
		case "Contents":
			contents++
			span = [2]int{start, l.pos}
		case "ByteRange":
			ranges++
		}
	}
	if contents != 1 || ranges != 1 {
		return [2]int{}, malformed("%d /Contents and %d /ByteRange entries, want one of each", contents, ranges)
	}
	return span, nil
}

// unreferencedRanges finds /ByteRange arrays in the raw bytes that look
// like a signature's (four numbers, the hole a hex string) but are not
// those of a field's signature (known, by hole). It is a scan of the
// text, so it sees neither dictionaries in object streams nor keys
// written with # escapes; those no viewer shows either, and the scan is
// there to report what a careless verifier would count, not to find
// every byte of a hostile file.
func unreferencedRanges(pdf []byte, known map[[2]int]bool) ([][4]int, error) {
	key := []byte("/ByteRange")
	var out [][4]int
	seen := map[[2]int]bool{}
	for pos, n := 0, 0; ; n++ {
		i := bytes.Index(pdf[pos:], key)
		if i < 0 {
			return out, nil
		}
		if n == maxByteRangeKeys {
			return nil, fmt.Errorf("%w: more than %d /ByteRange keys", ErrTooComplex, maxByteRangeKeys)
		}
		pos += i + len(key)
		br, ok := byteRangeAt(pdf, pos)
		hole := [2]int{br[1], br[2]}
		if !ok || known[hole] || seen[hole] {
			continue
		}
		seen[hole] = true
		out = append(out, br)
	}
}

// byteRangeAt reads the array after a /ByteRange key at pos, in a window
// (as wholeFileRange does), and reports whether it is a plausible
// signature's: [0 a b c] within the file, the hole from '<' to '>'.
func byteRangeAt(pdf []byte, pos int) ([4]int, bool) {
	l := &lexer{b: pdf[:min(len(pdf), pos+maxByteRangeText)], pos: pos}
	v, err := l.object(maxDepth - 1)
	a, ok := v.(array)
	if err != nil || !ok || len(a) != 4 {
		return [4]int{}, false
	}
	var br [4]int
	for i, e := range a {
		n, ok := e.(int64)
		if !ok || n < 0 || n > int64(len(pdf)) {
			return [4]int{}, false
		}
		br[i] = int(n)
	}
	if br[0] != 0 || br[1] >= br[2] || br[2]+br[3] > len(pdf) || pdf[br[1]] != '<' || pdf[br[2]-1] != '>' {
		return [4]int{}, false
	}
	return br, true
}

// parseDate reads a PDF date (§7.9.4), D:YYYYMMDDHHmmSSOHH'mm', where
// every part after the year may be left out; false when s is not one.
func parseDate(s string) (time.Time, bool) {
	s = strings.TrimPrefix(s, "D:")
	two := func() (int, bool) {
		if len(s) < 2 || !isDigit(s[0]) || !isDigit(s[1]) {
			return 0, false
		}
		v := int(s[0]-'0')*10 + int(s[1]-'0')
		s = s[2:]
		return v, true
	}
	if len(s) < 4 {
		return time.Time{}, false
	}
	year, err := strconv.Atoi(s[:4])
	if err != nil || !isDigit(s[0]) {
		return time.Time{}, false
	}
	s = s[4:]
	f := [5]int{1, 1, 0, 0, 0} // month, day, hour, minute, second
	bounds := [5][2]int{{1, 12}, {1, 31}, {0, 23}, {0, 59}, {0, 59}}
	for i := range f {
		if len(s) == 0 || !isDigit(s[0]) {
			break
		}
		v, ok := two()
		if !ok || v < bounds[i][0] || v > bounds[i][1] {
			return time.Time{}, false
		}
		f[i] = v
	}
	loc := time.UTC
	if len(s) > 0 {
		sign := 1
		switch s[0] {
		case 'Z':
			sign = 0
		case '-':
			sign = -1
		case '+':
		default:
			return time.Time{}, false
		}
		s = s[1:]
		if s != "" {
			hh, ok1 := two()
			s = strings.TrimPrefix(s, "'")
			mm, ok2 := 0, true
			if s != "" {
				mm, ok2 = two()
				s = strings.TrimPrefix(s, "'")
			}
			if !ok1 || !ok2 || hh > 23 || mm > 59 || s != "" {
				return time.Time{}, false
			}
			loc = time.FixedZone("", sign*(hh*3600+mm*60))
		}
	}
	return time.Date(year, time.Month(f[0]), f[1], f[2], f[3], f[4], 0, loc), true
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// decodeText decodes a text string (§7.9.2.2): UTF-16BE after its byte
// order mark, UTF-8 after its (ISO 32000-2), else PDFDocEncoding, read
// here as Latin-1, which it equals for letters and digits.
func decodeText(b []byte) string {
	switch {
	case len(b) >= 2 && b[0] == 0xfe && b[1] == 0xff:
		u := make([]uint16, 0, (len(b)-2)/2)
		for i := 2; i+1 < len(b); i += 2 {
			u = append(u, uint16(b[i])<<8|uint16(b[i+1]))
		}
		return string(utf16.Decode(u))
	case len(b) >= 3 && b[0] == 0xef && b[1] == 0xbb && b[2] == 0xbf:
		return strings.ToValidUTF8(string(b[3:]), "\uFFFD")
	}
	var s strings.Builder
	for _, c := range b {
		if c < utf8.RuneSelf {
			s.WriteByte(c)
			continue
		}
		s.WriteRune(rune(c))
	}
	return s.String()
}
