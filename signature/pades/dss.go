package pades

import (
	"context"
	"crypto/sha1"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"golang.org/x/crypto/ocsp"
)

// ValidationData is what a DSS holds (ETSI EN 319 142-1 §5.4.2; ISO
// 32000-2 §12.8.4.3).
type ValidationData struct {
	Certs [][]byte // DER certificates
	OCSPs [][]byte // DER OCSPResponse
	CRLs  [][]byte // DER CertificateList
}

// maxDSSEntries bounds each of the DSS arrays read: a letter's chains
// need a handful; a hostile file could list thousands, each decoded and,
// in Verify, parsed.
const maxDSSEntries = 256

// dssEntry is one stream of a DSS array.
type dssEntry struct {
	ref ref
	der []byte
	// off is the offset in the file of the stream object, -1 when it is
	// not stored there directly; Verify uses it to tell which document
	// timestamps came after the data.
	off int
}

// dss is a document security store read from a catalog.
type dss struct {
	ref                ref // zero when the DSS is not an indirect object
	dict               dict
	certs, ocsps, crls []dssEntry
	vri                dict // keys are uppercase hex SHA-1 of a signature's CMS
}

// readDSS reads the catalog's /DSS; nil without one. Every Certs, OCSPs
// and CRLs entry must be a reference to a stream: that is all ISO 32000-2
// §12.8.4.3 allows, and AddDSS keeps them by reference.
func (d *document) readDSS(cat dict) (*dss, error) {
	if cat["DSS"] == nil {
		return nil, nil
	}
	s := &dss{}
	s.ref, _ = cat["DSS"].(ref)
	dd, err := d.dictOf(cat["DSS"], "DSS")
	if err != nil {
		return nil, err
	}
	s.dict = dd
	for _, a := range []struct {
		key  name
		into *[]dssEntry
	}{{"Certs", &s.certs}, {"OCSPs", &s.ocsps}, {"CRLs", &s.crls}} {
		list, err := d.arrayOf(dd[a.key], "DSS /"+string(a.key))
		if err != nil {
			return nil, err
		}
		if len(list) > maxDSSEntries {
			return nil, fmt.Errorf("%w: more than %d DSS /%s entries", ErrTooComplex, maxDSSEntries, a.key)
		}
		for i, v := range list {
			r, ok := v.(ref)
			if !ok {
				return nil, malformed("DSS /%s entry %d is not a reference", a.key, i)
			}
			o, err := d.resolve(r)
			if err != nil {
				return nil, err
			}
			st, ok := o.(*stream)
			if !ok {
				return nil, malformed("DSS /%s entry %d is not a stream", a.key, i)
			}
			data, err := d.bud.decode(st)
			if err != nil {
				return nil, fmt.Errorf("DSS /%s entry %d: %w", a.key, i, err)
			}
			off := -1
			if e := d.xref[r.num]; e.kind == 1 {
				off = int(e.off)
			}
			*a.into = append(*a.into, dssEntry{ref: r, der: data, off: off})
		}
	}
	if dd["VRI"] != nil {
		if s.vri, err = d.dictOf(dd["VRI"], "DSS /VRI"); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// vriKey is the key of a signature's VRI dictionary: the SHA-1 of its
// CMS (EN 319 142-1 §5.4.2.3, ISO 32000-2 §12.8.4.4), in uppercase hex.
func vriKey(der []byte) name {
	h := sha1.Sum(der)
	return name(strings.ToUpper(hex.EncodeToString(h[:])))
}

// AddDSS appends an incremental update with a /DSS dictionary in the
// catalog holding vd (merged with an existing DSS, no duplicates) and a
// /VRI entry for every signature in the file (key: uppercase hex SHA-1 of
// the signature's CMS DER in /Contents, without padding) pointing at the
// data for it. Earlier signatures stay valid.
//
// What is merged: the streams of an existing DSS are kept by reference,
// and an item of vd whose bytes one of them already holds is not added
// again but referred to. A signature that already has a VRI entry keeps
// it; one without gets an entry naming the items of vd (the data the
// caller gathered for the signatures it just made), none when vd is empty.
// Each item must parse as what it claims to be, so that a DSS never holds
// bytes no verifier can use.
//
// The update touches only the catalog (/DSS and the /Extensions entry
// ESIC of PAdES, ETSI EN 319 142-1 §5.4.1) and new objects, so it is
// what a DocMDP certification permits (ETSI EN 319 142-1 §5.4: DSS and
// document timestamp updates are outside DocMDP's restrictions), and
// Verify accepts it after the last signature. The document is read
// within DefaultLimits; errors are those of Sign's parse (ErrMalformed,
// ErrEncrypted, ErrTooComplex) and, for an item of vd that does not parse,
// an error naming it.
func AddDSS(ctx context.Context, pdf []byte, vd ValidationData) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := vd.check(); err != nil {
		return nil, err
	}
	bud := newBudget(Limits{})
	d, err := parse(pdf, bud)
	if err != nil {
		return nil, err
	}
	out, err := addDSS(d, vd, time.Now())
	if bud.err != nil {
		return nil, bud.err
	}
	return out, err
}

// check parses every item, so that garbage is refused before it is
// written.
func (vd ValidationData) check() error {
	for i, c := range vd.Certs {
		if _, err := x509.ParseCertificate(c); err != nil {
			return fmt.Errorf("pades: DSS certificate %d: %w", i, err)
		}
	}
	for i, o := range vd.OCSPs {
		if _, err := ocsp.ParseResponse(o, nil); err != nil {
			return fmt.Errorf("pades: DSS OCSP response %d: %w", i, err)
		}
	}
	for i, c := range vd.CRLs {
		if _, err := x509.ParseRevocationList(c); err != nil {
			return fmt.Errorf("pades: DSS CRL %d: %w", i, err)
		}
	}
	if n := max(len(vd.Certs), len(vd.OCSPs), len(vd.CRLs)); n > maxDSSEntries {
		return fmt.Errorf("pades: %d DSS items of one kind, at most %d", n, maxDSSEntries)
	}
	return nil
}

func addDSS(d *document, vd ValidationData, now time.Time) ([]byte, error) {
	rootRef, cat, err := d.catalog()
	if err != nil {
		return nil, err
	}
	old, err := d.readDSS(cat)
	if err != nil {
		return nil, err
	}
	fields, err := d.signatureFields()
	if err != nil {
		return nil, err
	}
	if old == nil {
		old = &dss{}
	}
	u := newUpdate(d)
	merge := func(have []dssEntry, items [][]byte) (all, mine array, err error) {
		if len(have)+len(items) > maxDSSEntries {
			return nil, nil, fmt.Errorf("pades: DSS would hold %d items of one kind, at most %d", len(have)+len(items), maxDSSEntries)
		}
		byDER := map[string]ref{}
		for _, e := range have {
			all = append(all, e.ref)
			byDER[string(e.der)] = e.ref
		}
		for _, der := range items {
			r, ok := byDER[string(der)]
			if !ok {
				r = ref{u.alloc(), 0}
				u.putStream(r.num, dict{}, der)
				byDER[string(der)] = r
				all = append(all, r)
			}
			if !containsRef(mine, r) {
				mine = append(mine, r)
			}
		}
		return all, mine, nil
	}
	certs, myCerts, err := merge(old.certs, vd.Certs)
	if err != nil {
		return nil, err
	}
	ocsps, myOCSPs, err := merge(old.ocsps, vd.OCSPs)
	if err != nil {
		return nil, err
	}
	crls, myCRLs, err := merge(old.crls, vd.CRLs)
	if err != nil {
		return nil, err
	}

	vri := dict{}
	for k, v := range old.vri {
		vri[k] = v
	}
	if len(myCerts)+len(myOCSPs)+len(myCRLs) > 0 {
		for _, f := range fields {
			contents, ok := f.sig["Contents"].(pdfString)
			if f.off < 0 || !ok {
				continue
			}
			der, err := trimPadding(contents)
			if err != nil {
				continue // not a signature any verifier reads; nothing to validate
			}
			k := vriKey(der)
			if vri[k] != nil {
				continue
			}
			e := dict{"TU": pdfString(pdfDate(now))}
			for key, refs := range map[name]array{"Cert": myCerts, "OCSP": myOCSPs, "CRL": myCRLs} {
				if len(refs) > 0 {
					e[key] = refs
				}
			}
			vri[k] = e
		}
	}

	nd := dict{}
	for k, v := range old.dict {
		nd[k] = v
	}
	nd["Type"] = name("DSS")
	for key, refs := range map[name]array{"Certs": certs, "OCSPs": ocsps, "CRLs": crls} {
		delete(nd, key)
		if len(refs) > 0 {
			nd[key] = refs
		}
	}
	delete(nd, "VRI")
	if len(vri) > 0 {
		nd["VRI"] = vri
	}
	// Always a new object: the old DSS's number could be shared with
	// anything in a hostile file, a page say, which rewriting would change.
	dssRef := ref{u.alloc(), 0}
	u.put(dssRef.num, dssRef.gen, nd)

	nc := clone(cat)
	nc["DSS"] = dssRef
	ext, err := d.esicExtensions(cat)
	if err != nil {
		return nil, err
	}
	nc["Extensions"] = ext
	u.put(rootRef.num, rootRef.gen, nc)
	return u.finish(), nil
}

// esicExtensions is the catalog's /Extensions with the PAdES extension
// (ETSI EN 319 142-1 §5.4.1: prefix ESIC, base version 1.7, extension
// level 5) added, unless a level at least as high is declared already.
func (d *document) esicExtensions(cat dict) (dict, error) {
	ext := dict{}
	if cat["Extensions"] != nil {
		old, err := d.dictOf(cat["Extensions"], "catalog /Extensions")
		if err != nil {
			return nil, err
		}
		ext = clone(old)
	}
	if e, err := d.dictOf(ext["ESIC"], "ESIC extension"); err == nil && e != nil {
		if lvl, ok := e["ExtensionLevel"].(int64); ok && lvl >= 5 {
			return ext, nil
		}
	}
	ext["ESIC"] = dict{"BaseVersion": name("1.7"), "ExtensionLevel": int64(5)}
	return ext, nil
}

func containsRef(a array, r ref) bool {
	for _, v := range a {
		if v == any(r) {
			return true
		}
	}
	return false
}

// pdfDate writes t as a PDF date (§7.9.4) in UTC.
func pdfDate(t time.Time) string {
	return "D:" + t.UTC().Format("20060102150405") + "Z"
}
