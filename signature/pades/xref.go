package pades

import (
	"bytes"
	"fmt"
	"strconv"
)

// xrefEntry locates one object: in the file (kind 1, at off) or inside an
// object stream (kind 2, stream number off, index idx). Kind 0 is free.
type xrefEntry struct {
	kind byte
	off  int64
	gen  int
	idx  int
}

// document is a parsed PDF, read lazily through its cross-reference
// sections.
type document struct {
	b          []byte
	startxref  int
	xrefStream bool // the newest section is a cross-reference stream
	trailer    dict // the newest trailer (or xref stream dictionary)
	xref       map[int]xrefEntry
	objstm     streamCache
	busy       map[int]bool // objects being resolved, to catch cycles
	bud        *budget
}

type objectStream struct {
	data    []byte
	first   int
	offsets []int // by index
}

// maxSections bounds the /Prev chain.
const maxSections = 4096

// parse reads the header, the trailer chain and the cross-reference
// sections of b, counting the work against bud. It refuses encrypted
// documents.
func parse(b []byte, bud *budget) (*document, error) {
	head := b[:min(len(b), 1024)]
	if !bytes.Contains(head, []byte("%PDF-")) {
		return nil, malformed("no %%PDF- header")
	}
	tail := b[max(0, len(b)-2048):]
	i := bytes.LastIndex(tail, []byte("startxref"))
	if i < 0 {
		return nil, malformed("no startxref")
	}
	l := &lexer{b: tail, pos: i + len("startxref")}
	off, ok := l.integer()
	if !ok || off >= len(b) {
		return nil, malformed("bad startxref")
	}
	d := &document{b: b, startxref: off, xref: map[int]xrefEntry{}, busy: map[int]bool{}, bud: bud}
	d.objstm.max = bud.lim.MaxObjectStreams
	seen := map[int]bool{}
	for n := 0; ; n++ {
		if n >= maxSections || seen[off] {
			return nil, malformed("cross-reference sections loop")
		}
		seen[off] = true
		trailer, isStream, err := d.section(off)
		if err != nil {
			return nil, err
		}
		if d.trailer == nil {
			d.trailer, d.xrefStream = trailer, isStream
			if _, enc := trailer["Encrypt"]; enc {
				return nil, ErrEncrypted
			}
		}
		if stm, ok := trailer["XRefStm"].(int64); ok && !isStream {
			// Hybrid file (§7.5.8.4): the stream's entries rank below the
			// table they are named in and above its /Prev.
			if _, _, err := d.section(int(stm)); err != nil {
				return nil, err
			}
		}
		prev, ok := trailer["Prev"].(int64)
		if !ok {
			break
		}
		if prev < 0 || prev >= int64(len(b)) {
			return nil, malformed("bad /Prev %d", prev)
		}
		off = int(prev)
	}
	if _, ok := d.trailer["Root"].(ref); !ok {
		return nil, malformed("trailer has no /Root reference")
	}
	return d, nil
}

// section reads the cross-reference section at off; entries already known
// from a newer section win.
func (d *document) section(off int) (dict, bool, error) {
	if off < 0 || off >= len(d.b) {
		return nil, false, malformed("cross-reference offset %d out of range", off)
	}
	l := d.lexer(d.b, off)
	l.skip()
	if bytes.HasPrefix(d.b[l.pos:], []byte("xref")) {
		l.pos += 4
		t, err := d.table(l)
		return t, false, err
	}
	num, obj, err := d.indirect(l.pos)
	if err != nil {
		return nil, false, fmt.Errorf("cross-reference stream: %w", err)
	}
	s, ok := obj.(*stream)
	if !ok || s.dict["Type"] != name("XRef") {
		return nil, false, malformed("object %d at offset %d is not a cross-reference stream", num, off)
	}
	if err := d.xrefStreamEntries(s); err != nil {
		return nil, false, err
	}
	return s.dict, true, nil
}

// set records e for num unless a newer section had it, within
// MaxObjects.
func (d *document) set(num int, e xrefEntry) error {
	if _, ok := d.xref[num]; ok {
		return nil
	}
	if err := d.bud.objects(len(d.xref) + 1); err != nil {
		return err
	}
	d.xref[num] = e
	return nil
}

// lexer reads b from pos, charging what it builds to the document's
// budget.
func (d *document) lexer(b []byte, pos int) *lexer { return &lexer{b: b, pos: pos, bud: d.bud} }

// table reads a classic cross-reference table (§7.5.4) and its trailer.
func (d *document) table(l *lexer) (dict, error) {
	for {
		save := l.pos
		start, ok := l.integer()
		if !ok {
			l.pos = save
			break
		}
		count, ok := l.integer()
		if !ok || count > len(d.b)/18 || start > 1<<24 {
			return nil, malformed("bad cross-reference subsection")
		}
		for i := 0; i < count; i++ {
			off, ok1 := l.integer()
			gen, ok2 := l.integer()
			kind := l.keyword()
			if !ok1 || !ok2 || (kind != "n" && kind != "f") {
				return nil, malformed("bad cross-reference entry")
			}
			e := xrefEntry{kind: 0, off: int64(off), gen: gen}
			if kind == "n" {
				e.kind = 1
			}
			if err := d.set(start+i, e); err != nil {
				return nil, err
			}
		}
	}
	if err := l.expect("trailer"); err != nil {
		return nil, err
	}
	t, err := l.object(0)
	if err != nil {
		return nil, err
	}
	td, ok := t.(dict)
	if !ok {
		return nil, malformed("trailer is not a dictionary")
	}
	return td, nil
}

// xrefStreamEntries reads a cross-reference stream (§7.5.8).
func (d *document) xrefStreamEntries(s *stream) error {
	data, err := d.bud.decode(s)
	if err != nil {
		return err
	}
	w, _ := s.dict["W"].(array)
	if len(w) != 3 {
		return malformed("cross-reference stream /W")
	}
	var widths [3]int
	total := 0
	for i, v := range w {
		n, ok := v.(int64)
		if !ok || n < 0 || n > 8 {
			return malformed("cross-reference stream /W")
		}
		widths[i] = int(n)
		total += int(n)
	}
	if total == 0 {
		return malformed("cross-reference stream /W")
	}
	size, _ := s.dict["Size"].(int64)
	index := array{int64(0), size}
	if ix, ok := s.dict["Index"].(array); ok {
		index = ix
	}
	if len(index)%2 != 0 {
		return malformed("cross-reference stream /Index")
	}
	field := func(b []byte) int64 {
		var v int64
		for _, c := range b {
			v = v<<8 | int64(c)
		}
		return v
	}
	pos := 0
	for i := 0; i < len(index); i += 2 {
		start, ok1 := index[i].(int64)
		count, ok2 := index[i+1].(int64)
		if !ok1 || !ok2 || start < 0 || count < 0 || start > 1<<24 || count > int64(len(data)/total) {
			return malformed("cross-reference stream /Index")
		}
		for j := int64(0); j < count; j++ {
			if pos+total > len(data) {
				return malformed("cross-reference stream too short")
			}
			row := data[pos : pos+total]
			pos += total
			kind := int64(1) // §7.5.8.2: type defaults to 1 when W[0] is 0
			if widths[0] > 0 {
				kind = field(row[:widths[0]])
			}
			f2 := field(row[widths[0] : widths[0]+widths[1]])
			f3 := field(row[widths[0]+widths[1]:])
			num := int(start + j)
			var err error
			switch kind {
			case 0:
				err = d.set(num, xrefEntry{kind: 0})
			case 1:
				err = d.set(num, xrefEntry{kind: 1, off: f2, gen: int(f3)})
			case 2:
				err = d.set(num, xrefEntry{kind: 2, off: f2, idx: int(f3)})
			}
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// indirect parses "num gen obj ... endobj" at off, with a stream if any.
func (d *document) indirect(off int) (int, any, error) {
	l := d.lexer(d.b, off)
	num, ok1 := l.integer()
	_, ok2 := l.integer()
	if !ok1 || !ok2 {
		return 0, nil, malformed("no object header at offset %d", off)
	}
	if err := l.expect("obj"); err != nil {
		return 0, nil, err
	}
	v, err := l.object(0)
	if err != nil {
		return 0, nil, err
	}
	sd, ok := v.(dict)
	if !ok {
		return num, v, nil
	}
	save := l.pos
	if l.keyword() != "stream" {
		l.pos = save
		return num, v, nil
	}
	// §7.3.8.1: "stream" is followed by CRLF or LF.
	if l.pos < len(d.b) && d.b[l.pos] == '\r' {
		l.pos++
	}
	if l.pos < len(d.b) && d.b[l.pos] == '\n' {
		l.pos++
	}
	start := l.pos
	length := -1
	switch n := sd["Length"].(type) {
	case int64:
		length = int(n)
	case ref:
		if v, err := d.resolve(n); err == nil {
			if n, ok := v.(int64); ok {
				length = int(n)
			}
		}
	}
	if length >= 0 && start+length <= len(d.b) {
		e := &lexer{b: d.b, pos: start + length}
		if e.keyword() == "endstream" {
			return num, &stream{dict: sd, data: d.b[start : start+length]}, nil
		}
	}
	// A wrong /Length is common in the wild; fall back to the keyword.
	// The search is work too: many streams that all run to one distant
	// endstream would scan the file once each.
	win := d.b[start:]
	if left := d.bud.parseLeft(); int64(len(win)) > left {
		win = win[:left]
	}
	end := bytes.Index(win, []byte("endstream"))
	scanned := len(win)
	if end >= 0 {
		scanned = end + len("endstream")
	}
	if err := d.bud.parse(scanned); err != nil {
		return 0, nil, err
	}
	if end < 0 {
		if len(win) < len(d.b)-start {
			// The window stopped at the budget, not at the end of the file.
			return 0, nil, d.bud.parse(1)
		}
		return 0, nil, malformed("unterminated stream in object %d", num)
	}
	data := bytes.TrimSuffix(d.b[start:start+end], []byte("\n"))
	data = bytes.TrimSuffix(data, []byte("\r"))
	return num, &stream{dict: sd, data: data}, nil
}

// resolve follows references until it reaches a direct object.
func (d *document) resolve(v any) (any, error) {
	for range maxDepth {
		r, ok := v.(ref)
		if !ok {
			return v, nil
		}
		o, err := d.object(r.num)
		if err != nil {
			return nil, err
		}
		v = o
	}
	return nil, malformed("reference chain too long")
}

// object loads object num through the cross-reference sections; a missing
// object is null (§7.3.10).
func (d *document) object(num int) (any, error) {
	e, ok := d.xref[num]
	if !ok || e.kind == 0 {
		return nil, nil
	}
	if d.busy[num] {
		return nil, malformed("object %d refers to itself", num)
	}
	d.busy[num] = true
	defer delete(d.busy, num)
	if e.kind == 1 {
		if e.off < 0 || e.off >= int64(len(d.b)) {
			return nil, malformed("object %d offset out of range", num)
		}
		got, v, err := d.indirect(int(e.off))
		if err != nil {
			return nil, fmt.Errorf("object %d: %w", num, err)
		}
		if got != num {
			return nil, malformed("offset of object %d holds object %d", num, got)
		}
		return v, nil
	}
	os, err := d.objectStream(int(e.off))
	if err != nil {
		return nil, fmt.Errorf("object %d: %w", num, err)
	}
	if e.idx < 0 || e.idx >= len(os.offsets) {
		return nil, malformed("object %d: index %d outside its object stream", num, e.idx)
	}
	return d.lexer(os.data, os.first+os.offsets[e.idx]).object(0)
}

// objectStream decodes and indexes object stream num (§7.5.7), or takes
// it from the cache.
func (d *document) objectStream(num int) (*objectStream, error) {
	if os, ok := d.objstm.get(num); ok {
		return os, nil
	}
	if e := d.xref[num]; e.kind != 1 {
		return nil, malformed("object stream %d is not stored in the file", num)
	}
	v, err := d.object(num)
	if err != nil {
		return nil, err
	}
	s, ok := v.(*stream)
	if !ok || s.dict["Type"] != name("ObjStm") {
		return nil, malformed("object %d is not an object stream", num)
	}
	data, err := d.bud.decode(s)
	if err != nil {
		return nil, err
	}
	n, _ := s.dict["N"].(int64)
	first, _ := s.dict["First"].(int64)
	if n < 0 || first < 0 || first > int64(len(data)) || n > int64(len(data)) {
		return nil, malformed("object stream %d header", num)
	}
	os := &objectStream{data: data, first: int(first)}
	l := d.lexer(data[:first], 0)
	for range n {
		_, ok1 := l.integer()
		off, ok2 := l.integer()
		if !ok1 || !ok2 || int(first)+off > len(data) {
			return nil, malformed("object stream %d header", num)
		}
		os.offsets = append(os.offsets, off)
	}
	d.objstm.put(num, os)
	return os, nil
}

// dictOf resolves v and requires a dictionary.
func (d *document) dictOf(v any, what string) (dict, error) {
	o, err := d.resolve(v)
	if err != nil {
		return nil, err
	}
	if s, ok := o.(*stream); ok {
		return s.dict, nil
	}
	dd, ok := o.(dict)
	if !ok {
		return nil, malformed("%s is not a dictionary", what)
	}
	return dd, nil
}

// number reads an int or real.
func number(v any) (float64, bool) {
	switch n := v.(type) {
	case int64:
		return float64(n), true
	case float64:
		return n, true
	}
	return 0, false
}

func itoa(i int) string { return strconv.Itoa(i) }
