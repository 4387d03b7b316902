package pades

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/tekenid/teken/signature/cms"
	"github.com/tekenid/teken/signature/tsa"
)

// Options tune Sign. The zero value makes an invisible B-B signature at
// the current time with the key's default digest (cms.DefaultHash).
type Options struct {
	// Chain holds intermediates to embed beside the signer certificate.
	Chain []*x509.Certificate
	// Hash is SHA-256, SHA-384 or SHA-512; zero follows the key.
	Hash crypto.Hash
	// Time is the signing time written to /M and shown in the block;
	// zero means now.
	Time time.Time
	// Location is the zone the time is shown in (Asia/Makassar for
	// WITA); nil means UTC.
	Location *time.Location
	// Reason and ContactInfo go into the signature dictionary.
	Reason, ContactInfo string
	// Visible, when set, draws a signature block on a page.
	Visible *Appearance
	// Certify makes the signature lock the document against every change
	// but form filling and further signatures (permission 2): the
	// document's certification (DocMDP, ISO 32000-1 §12.8.2.2) when it is
	// the first signature, else, as a certification may only be the
	// first, a signature whose field locks the document (/Lock with /P,
	// ISO 32000-2 §12.7.5.5, and a FieldMDP reference).
	Certify bool
	// TSA, when set, asks for an RFC 3161 timestamp (PAdES B-T): Sign
	// reserves room for the token in /Contents but does not call the
	// authority; Timestamp does, later, without the signer. Sign reads
	// nothing else of it.
	TSA *TSAOptions
	// Limits bound the work of reading the document and say whether
	// embedded files are accepted; the zero value is DefaultLimits. Pass
	// the same Limits as to Inspect, so that Sign accepts what Inspect
	// did.
	Limits Limits
}

// Signed is a signed PDF.
type Signed struct {
	// PDF is the input followed by the incremental update.
	PDF []byte
	// Timestamped reports a signature-time-stamp in the signature; only
	// Timestamp sets it.
	Timestamped bool
	// TimestampError says why Timestamp could not add a timestamp; it
	// matches ErrTimestamp. The signature is then B-B.
	TimestampError error
	// Token is the signature timestamp Timestamp added, as its authority
	// answered and package tsa checked it: its time and the authority's
	// chain are what the validation data of B-LT are fetched for.
	Token *tsa.Token

	// contents are the offsets in PDF of the /Contents hex string's '<'
	// and just past its '>', as Sign wrote them; zero when this Signed
	// was not made by Sign, and Timestamp then finds the signature
	// dictionary again.
	contents [2]int
}

// reserve is room in /Contents beyond the certificates: SignedData
// structure, attributes and a signature value (4096-bit RSA fits).
const (
	reserveBase = 4096
	reserveTSA  = 16384
)

// Inspection is what one parse of a PDF tells before it is signed.
type Inspection struct {
	// Pages is the number of pages.
	Pages int
	// Block is where Sign would draw the visible block; nil when no
	// appearance was asked for.
	Block *Block
	// Decompressed is what the parse inflated, as MaxDecompressedBytes
	// counts it, so a caller can bound several documents together.
	Decompressed int64
}

// Block is a rectangle on a page: the 1-based page and x0, y0, x1, y1 in
// PDF points of the page's user space.
type Block struct {
	Page int
	Rect [4]float64
}

// Inspect parses pdf once, as Sign would, without touching a token, so a
// job can be refused up front: it reports ErrEncrypted, ErrMalformed,
// ErrLocked, ErrTooComplex when reading it would pass lim,
// ErrActiveContent when it holds JavaScript, actions that run on their
// own, XFA, rich media or (unless lim allows them) embedded files, or
// ErrPage when a requests a page the document does not have, or
// ErrPlacement when a's block does not lie within its page. With a set,
// it also says where the visible block will stand, so the kiosk can
// overlay it on a preview; the terminal keeps that beside the job instead
// of parsing again.
func Inspect(pdf []byte, a *Appearance, lim Limits) (*Inspection, error) {
	bud := newBudget(lim)
	_, pages, _, _, err := open(pdf, bud)
	if err != nil {
		return nil, err
	}
	in := &Inspection{Pages: len(pages), Decompressed: bud.inflated}
	if a != nil {
		n, _, rect, err := place(pages, *a)
		if err != nil {
			return nil, err
		}
		in.Block = &Block{Page: n, Rect: rect}
	}
	return in, nil
}

// open parses a PDF that is to take a signature, within lim: its pages,
// its catalog, the check that its certification allows one and the walk
// through every object for active content. When the budget ran out
// anywhere, even in a read whose failure a caller tolerated, the answer is
// ErrTooComplex.
func open(pdf []byte, bud *budget) (d *document, pages []page, rootRef ref, cat dict, err error) {
	defer func() {
		if bud.err != nil {
			d, pages, rootRef, cat, err = nil, nil, ref{}, nil, bud.err
		}
	}()
	if d, err = parse(pdf, bud); err != nil {
		return nil, nil, ref{}, nil, err
	}
	if pages, err = d.pages(); err != nil {
		return nil, nil, ref{}, nil, err
	}
	if rootRef, cat, err = d.catalog(); err != nil {
		return nil, nil, ref{}, nil, err
	}
	if err := d.checkFieldLocks(cat); err != nil {
		return nil, nil, ref{}, nil, err
	}
	if err := d.checkLocked(cat); err != nil {
		return nil, nil, ref{}, nil, err
	}
	if err := d.checkActive(pages, rootRef, cat, bud.lim.AllowEmbeddedFiles); err != nil {
		return nil, nil, ref{}, nil, err
	}
	return d, pages, rootRef, cat, nil
}

// checkLocked refuses a certified document whose DocMDP permission is 1
// (ISO 32000-1 §12.8.2.2, table 254): any change, a signature included,
// would break its certification.
func (d *document) checkLocked(cat dict) error {
	if cat["Perms"] == nil {
		return nil
	}
	perms, err := d.dictOf(cat["Perms"], "catalog /Perms")
	if err != nil || perms["DocMDP"] == nil {
		return err
	}
	sig, err := d.dictOf(perms["DocMDP"], "DocMDP signature")
	if err != nil {
		return err
	}
	refs, err := d.arrayOf(sig["Reference"], "signature /Reference")
	if err != nil {
		return err
	}
	for _, r := range refs {
		sr, err := d.dictOf(r, "signature reference")
		if err != nil {
			return err
		}
		if sr["TransformMethod"] != name("DocMDP") {
			continue
		}
		params, err := d.dictOf(sr["TransformParams"], "DocMDP parameters")
		if err != nil {
			return err
		}
		if p, ok := params["P"].(int64); ok && p == 1 {
			return ErrLocked
		}
	}
	return nil
}

// checkFieldLocks refuses a document one of whose signed fields locks it
// against any change (/Lock with /P 1, ISO 32000-2 §12.7.5.5).
func (d *document) checkFieldLocks(cat dict) error {
	if cat["AcroForm"] == nil {
		return nil
	}
	acro, err := d.dictOf(cat["AcroForm"], "AcroForm")
	if err != nil {
		return err
	}
	fields, err := d.arrayOf(acro["Fields"], "AcroForm /Fields")
	if err != nil {
		return err
	}
	for _, f := range fields {
		fd, err := d.dictOf(f, "field")
		if err != nil || fd["FT"] != name("Sig") || fd["V"] == nil || fd["Lock"] == nil {
			continue
		}
		lock, err := d.dictOf(fd["Lock"], "signature field /Lock")
		if err != nil {
			return err
		}
		if p, ok := lock["P"].(int64); ok && p == 1 {
			return ErrLocked
		}
	}
	return nil
}

// Sign adds a PAdES signature by signer, whose certificate is cert, to pdf
// as an incremental update. signer is called exactly once, with the
// digest of the signed attributes. Sign makes no network request: with
// opts.TSA set it leaves room for a timestamp token in /Contents, and
// Timestamp adds the token afterwards, so that a token is held only for
// the signature itself and not while an authority answers.
func Sign(ctx context.Context, pdf []byte, signer crypto.Signer, cert *x509.Certificate, opts Options) (*Signed, error) {
	if signer == nil || cert == nil {
		return nil, errors.New("pades: nil signer or certificate")
	}
	hash := opts.Hash
	if hash == 0 {
		var err error
		if hash, err = cms.DefaultHash(cert.PublicKey); err != nil {
			return nil, fmt.Errorf("pades: %w", err)
		}
	}
	d, pages, rootRef, cat, err := open(pdf, newBudget(opts.Limits))
	if err != nil {
		return nil, err
	}
	when := opts.Time
	if when.IsZero() {
		when = time.Now()
	}
	when = when.Truncate(time.Second)
	loc := opts.Location
	if loc == nil {
		loc = time.UTC
	}

	pg := pages[0]
	rect := [4]float64{}
	var blk *block
	if a := opts.Visible; a != nil {
		if _, pg, rect, err = place(pages, *a); err != nil {
			return nil, err
		}
		if blk, err = drawBlock(rect[2]-rect[0], rect[3]-rect[1], *a, cert, FormatTime(when, loc)); err != nil {
			return nil, err
		}
	}

	u := newUpdate(d)
	sigNum, widgetNum := u.alloc(), u.alloc()
	chain := slices.DeleteFunc(slices.Clone(opts.Chain), func(c *x509.Certificate) bool { return c == nil })
	reserve := reserveBase + len(cert.Raw)
	for _, c := range chain {
		reserve += len(c.Raw)
	}
	if opts.TSA != nil {
		// Room for the signature-time-stamp Timestamp adds in place:
		// /Contents cannot grow later without moving every byte after
		// it, and the signature covers those (ISO 32000-1 §12.8.1).
		reserve += reserveTSA
	}
	lock := lockNone
	if opts.Certify {
		signed, err := d.signedFields(cat)
		if err != nil {
			return nil, err
		}
		lock = lockByCertification
		if signed > 0 {
			lock = lockByField
		}
	}
	br, contents := u.putSignature(sigNum, when.In(loc), opts, reserve, lock)

	widget := dict{
		"Type": name("Annot"), "Subtype": name("Widget"), "FT": name("Sig"),
		"V": ref{sigNum, 0}, "P": pg.ref,
		// §12.5.3: Print (4) and Locked (128).
		"F":    int64(132),
		"Rect": array{rect[0], rect[1], rect[2], rect[3]},
	}
	if blk != nil {
		widget["AP"] = dict{"N": blk.put(u, rect[2]-rect[0], rect[3]-rect[1])}
	}
	var certification ref
	switch lock {
	case lockByCertification:
		certification = ref{sigNum, 0}
	case lockByField:
		widget["Lock"] = dict{"Type": name("SigFieldLock"), "Action": name("All"), "P": int64(lockPermission)}
	}
	if err := u.addField(rootRef, cat, pg, widgetNum, widget, certification); err != nil {
		return nil, err
	}
	if d.bud.err != nil {
		// A field name read over budget was skipped, not refused.
		return nil, d.bud.err
	}
	out := u.finish()

	byteRange := fillByteRange(out, br, contents)
	digest, err := cms.Digest(ctx, io.MultiReader(bytes.NewReader(out[:byteRange[1]]), bytes.NewReader(out[byteRange[2]:])), hash)
	if err != nil {
		return nil, fmt.Errorf("pades: %w", err)
	}
	// EN 319 142-1 §5.2.2: no signing-time attribute; the time is /M.
	co := cms.SignOptions{Hash: hash, Chain: chain, OmitSigningTime: true}
	der, err := cms.SignDigest(ctx, digest, signer, cert, co)
	if err != nil {
		return nil, fmt.Errorf("pades: %w", err)
	}
	room := (contents[1] - contents[0] - 2) / 2
	if len(der) > room {
		return nil, fmt.Errorf("%w: %d bytes, %d reserved", ErrTooLarge, len(der), room)
	}
	hex.Encode(out[contents[0]+1:], der)
	return &Signed{PDF: out, contents: contents}, nil
}

// putSignature writes the signature dictionary (§12.8.1, EN 319 142-1
// §5.3) with placeholders; it returns the offset of the /ByteRange array
// and the offsets of the /Contents hex string's '<' and just past its '>'.
func (u *update) putSignature(num int, when time.Time, opts Options, reserve int, lock lockKind) (int, [2]int) {
	u.begin(num, 0)
	b := &u.buf
	b.WriteString("<</Type /Sig /Filter /Adobe.PPKLite /SubFilter /ETSI.CAdES.detached\n")
	_, off := when.Zone()
	sign := byte('+')
	if off < 0 {
		sign, off = '-', -off
	}
	fmt.Fprintf(b, "/M (D:%s%c%02d'%02d')\n", when.Format("20060102150405"), sign, off/3600, off%3600/60)
	if opts.Reason != "" {
		b.WriteString("/Reason ")
		writeObj(b, pdfString(utf16BE(opts.Reason)))
		b.WriteByte('\n')
	}
	if opts.ContactInfo != "" {
		b.WriteString("/ContactInfo ")
		writeObj(b, pdfString(utf16BE(opts.ContactInfo)))
		b.WriteByte('\n')
	}
	switch lock {
	case lockByCertification:
		fmt.Fprintf(b, "/Reference [<</Type /SigRef /TransformMethod /DocMDP /TransformParams <</Type /TransformParams /P %d /V /1.2>>>>]\n", lockPermission)
	case lockByField:
		fmt.Fprintf(b, "/Reference [<</Type /SigRef /TransformMethod /FieldMDP /TransformParams <</Type /TransformParams /Action /All /P %d /V /1.2>>>>]\n", lockPermission)
	}
	br, contents := u.placeholders(reserve)
	b.WriteString(">>")
	u.end()
	return br, contents
}

// lockKind is how a certifying signature locks the document.
type lockKind int

const (
	lockNone            lockKind = iota
	lockByCertification          // the first signature: DocMDP, /Perms in the catalog
	lockByField                  // a later one: its field's /Lock with /P
)

// lockPermission is what a locked document still allows: form filling
// and signatures (ISO 32000-1 table 254, P 2).
const lockPermission = 2

// signedFields counts the signature fields of the document that hold a
// signature.
func (d *document) signedFields(cat dict) (int, error) {
	if cat["AcroForm"] == nil {
		return 0, nil
	}
	acro, err := d.dictOf(cat["AcroForm"], "AcroForm")
	if err != nil {
		return 0, err
	}
	fields, err := d.arrayOf(acro["Fields"], "AcroForm /Fields")
	if err != nil {
		return 0, err
	}
	n := 0
	for _, f := range fields {
		fd, err := d.dictOf(f, "field")
		if err != nil {
			return 0, err
		}
		if fd["FT"] == name("Sig") && fd["V"] != nil {
			n++
		}
	}
	return n, nil
}

// placeholders writes /ByteRange and /Contents with room for reserve
// bytes of DER, to be filled in once the file is complete; it returns the
// offset of the /ByteRange array and the offsets of the /Contents hex
// string's '<' and just past its '>'.
func (u *update) placeholders(reserve int) (int, [2]int) {
	b := &u.buf
	b.WriteString("/ByteRange ")
	br := b.Len()
	b.WriteString("[0 0000000000 0000000000 0000000000]\n/Contents ")
	start := b.Len()
	b.WriteByte('<')
	b.Write(bytes.Repeat([]byte("0"), 2*reserve))
	b.WriteByte('>')
	return br, [2]int{start, b.Len()}
}

// fillByteRange writes the final /ByteRange at br for the hole contents
// of out, now that out is complete.
func fillByteRange(out []byte, br int, contents [2]int) [4]int {
	byteRange := [4]int{0, contents[0], contents[1], len(out) - contents[1]}
	copy(out[br:], fmt.Sprintf("[0 %010d %010d %010d]", byteRange[1], byteRange[2], byteRange[3]))
	return byteRange
}

// utf16BE encodes a text string (§7.9.2.2) with its byte order mark.
func utf16BE(s string) []byte {
	out := []byte{0xfe, 0xff}
	for _, r := range s {
		if r > 0xffff {
			r -= 0x10000
			hi, lo := 0xd800+(r>>10), 0xdc00+(r&0x3ff)
			out = append(out, byte(hi>>8), byte(hi), byte(lo>>8), byte(lo))
			continue
		}
		out = append(out, byte(r>>8), byte(r))
	}
	return out
}

// addField writes the widget, the page with the widget in /Annots, and
// the AcroForm with the field in /Fields and SigFlags 3 (§12.7.2:
// SignaturesExist | AppendOnly).
// addField adds the signature's field and widget to the page and the
// AcroForm; certification, when set, is the signature dictionary the
// catalog's /Perms names as the document's certification.
func (u *update) addField(rootRef ref, cat dict, pg page, widgetNum int, widget dict, certification ref) error {
	d := u.d
	acroRef, acroIndirect := cat["AcroForm"].(ref)
	if pg.ref == rootRef || (acroIndirect && (acroRef == rootRef || acroRef == pg.ref)) {
		return malformed("catalog, AcroForm and page share an object")
	}
	annots, err := d.arrayOf(pg.dict["Annots"], "page /Annots")
	if err != nil {
		return err
	}
	var acro dict
	if cat["AcroForm"] != nil {
		if acro, err = d.dictOf(cat["AcroForm"], "AcroForm"); err != nil {
			return err
		}
	}
	var fields array
	if acro != nil {
		if fields, err = d.arrayOf(acro["Fields"], "AcroForm /Fields"); err != nil {
			return err
		}
	}
	taken := map[string]bool{}
	for _, f := range fields {
		if fd, err := d.dictOf(f, "field"); err == nil {
			if t, ok := fd["T"].(pdfString); ok {
				taken[string(t)] = true
			}
		}
	}
	field := "Signature1"
	for i := 2; taken[field]; i++ {
		field = "Signature" + itoa(i)
	}
	widget["T"] = pdfString(field)
	u.put(widgetNum, 0, widget)

	np := clone(pg.dict)
	np["Annots"] = append(append(array{}, annots...), ref{widgetNum, 0})
	u.put(pg.ref.num, pg.ref.gen, np)

	na := dict{}
	if acro != nil {
		na = clone(acro)
	}
	na["Fields"] = append(append(array{}, fields...), ref{widgetNum, 0})
	na["SigFlags"] = int64(3)
	nc := clone(cat)
	if acroIndirect {
		u.put(acroRef.num, acroRef.gen, na)
	} else {
		nc["AcroForm"] = na
	}
	if certification.num != 0 {
		perms := dict{}
		if cat["Perms"] != nil {
			old, err := d.dictOf(cat["Perms"], "catalog /Perms")
			if err != nil {
				return err
			}
			perms = clone(old)
		}
		perms["DocMDP"] = certification
		nc["Perms"] = perms
	}
	if !acroIndirect || certification.num != 0 {
		u.put(rootRef.num, rootRef.gen, nc)
	}
	return nil
}
