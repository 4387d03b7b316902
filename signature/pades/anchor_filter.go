package pades

import "bytes"

// streamData undoes a content stream's filters, against the document's
// budget. Content streams use FlateDecode, often behind ASCII85Decode
// (ReportLab writes both); the image filters never apply to them.
func (x *textExtractor) streamData(s *stream) ([]byte, error) {
	fv, err := x.d.resolve(s.dict["Filter"])
	if err != nil {
		return nil, err
	}
	var filters array
	switch f := fv.(type) {
	case nil:
		return s.data, nil
	case name:
		filters = array{f}
	case array:
		filters = f
	default:
		return nil, malformed("bad stream /Filter")
	}
	pv, _ := x.d.resolve(s.dict["DecodeParms"])
	data := s.data
	for i, f := range filters {
		var parms dict
		switch p := pv.(type) {
		case dict:
			parms = p
		case array:
			if i < len(p) {
				parms, _ = p[i].(dict)
			}
		}
		switch f {
		case name("FlateDecode"), name("Fl"):
			if data, err = x.d.bud.inflate(data); err != nil {
				return nil, err
			}
			if data, err = unpredict(data, parms); err != nil {
				return nil, err
			}
		case name("ASCII85Decode"), name("A85"):
			if err := x.chargeDecoded(4 * len(data)); err != nil {
				return nil, err
			}
			if data, err = decodeASCII85(data); err != nil {
				return nil, err
			}
		case name("ASCIIHexDecode"), name("AHx"):
			if err := x.chargeDecoded(len(data)/2 + 1); err != nil {
				return nil, err
			}
			l := &lexer{b: append(append([]byte{'<'}, bytes.TrimRight(data, "> \t\r\n\f\x00")...), '>')}
			if data, err = l.hex(); err != nil {
				return nil, err
			}
		default:
			return nil, malformed("unsupported content stream filter %v", f)
		}
	}
	return data, nil
}

// chargeDecoded counts what a filter other than FlateDecode may produce
// against MaxDecompressedBytes, before it is produced.
func (x *textExtractor) chargeDecoded(n int) error {
	b := x.d.bud
	if b.err != nil {
		return b.err
	}
	b.inflated += int64(n) + decodeCost
	if b.inflated > b.lim.MaxDecompressedBytes {
		return b.over("decompressed bytes", b.lim.MaxDecompressedBytes, "max_decompressed_bytes")
	}
	return nil
}

// ascii85 decodes ASCII base-85 data (§7.4.3) up to its "~>".
func decodeASCII85(in []byte) ([]byte, error) {
	out := make([]byte, 0, len(in)*4/5+4)
	var group [5]byte
	n := 0
	flush := func(k int) {
		for j := k; j < 5; j++ {
			group[j] = 'u'
		}
		var v uint32
		for _, c := range group {
			v = v*85 + uint32(c-'!')
		}
		b := [4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}
		out = append(out, b[:k-1]...)
	}
	for i := 0; i < len(in); i++ {
		c := in[i]
		switch {
		case isWhite(c):
			continue
		case c == '~':
			i = len(in)
			continue
		case c == 'z' && n == 0:
			out = append(out, 0, 0, 0, 0)
			continue
		case c < '!' || c > 'u':
			return nil, malformed("bad byte 0x%02x in ASCII85 data", c)
		}
		group[n] = c
		n++
		if n == 5 {
			flush(5)
			n = 0
		}
	}
	switch n {
	case 0:
	case 1:
		return nil, malformed("ASCII85 data ends in a single byte")
	default:
		flush(n)
	}
	return out, nil
}
