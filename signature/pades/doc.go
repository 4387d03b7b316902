// Package pades signs PDF letters on the terminal with PAdES baseline
// signatures (ETSI EN 319 142-1): level B-B, and B-T when a timestamp
// authority answers. AddDSS and AddDocumentTimestamp take them further,
// each an incremental update of its own: a document security store with
// the chains' certificates, OCSP responses and CRLs makes B-LT (§5.4.2),
// and a document timestamp over all of it B-LTA (§5.4.3; see dss.go and
// doctimestamp.go). Verify checks every signature of a signed PDF (see
// verify.go): its byte range, CMS and signed attributes, chain,
// timestamps, revocation from the caller's CRLs and the DSS, the level,
// and whether the newest intact one covers the whole file.
//
// The signature is added as an incremental update (ISO 32000-1 §7.5.6):
// the bytes the official was shown are kept unchanged at the start of the
// output, so signatures already in the document stay valid. The update
// holds a signature dictionary with SubFilter ETSI.CAdES.detached and the
// signing time in /M, a signature field whose widget sits on a page (with
// a visible appearance on request), the catalog's AcroForm with
// SigFlags 3, and a new cross-reference section of the same kind as the
// document's last one (table or stream) pointing back with /Prev.
//
// The CMS inside /Contents is the detached SignedData of signature/cms with
// signed attributes content-type, message-digest and
// signing-certificate-v2 only: EN 319 142-1 §5.2.2 forbids a signing-time
// attribute (cms.SignOptions.OmitSigningTime). The crypto.Signer (a PIV
// token) is called exactly once per signature, with the digest of the
// DER-encoded signed attributes.
//
// Level B-T takes two steps, so that a token is held only while it signs.
// With Options.TSA set, Sign reserves room in /Contents for a timestamp
// token and makes no network request. Timestamp then asks the authority
// for an RFC 3161 token over the signature value and adds it as the
// signature-time-stamp unsigned attribute (RFC 5126 §5.11.4; level B-T
// of EN 319 142-1 clause 6). Unsigned attributes are not signed (RFC 5652
// §5.3), so no signer is needed for that: the CMS is rebuilt around the
// same signed attributes and signature value (cms.AddSignatureTimestamp)
// and written into the reserved hole in place, same length, zero-padded,
// so /ByteRange and every byte the signature covers stay as they were
// (ISO 32000-1 §12.8.1). A timestamp authority that cannot be reached, or
// a token that does not fit, does not fail the signature: the PDF stays a
// valid B-B and Signed.TimestampError says why.
//
// The parser reads classic cross-reference tables, cross-reference
// streams, hybrid files and object streams (FlateDecode with PNG
// predictors). Encrypted documents are refused with ErrEncrypted, and
// anything it cannot read with ErrMalformed, before the token is asked.
//
// Reading one document is bounded by Limits, so that a small hostile file
// cannot take the terminal's memory: the bytes inflated from
// cross-reference and object streams (DefaultLimits: 32 MiB, re-decodes
// included), the heap the parsed objects take, estimated as they are
// built (128 MiB, every read counted), the objects in the cross-reference
// (262,144) and the decoded object streams kept at once (16). Each is
// counted as the work is done, so a compression bomb is stopped after the
// budget, not after the bomb; a document over a limit is refused with
// ErrTooComplex, whose text names the limit. Nesting of arrays,
// dictionaries, the page tree and reference chains is bounded at 64
// levels, and the page tree at 100,000 pages. A 1,000-page document uses
// less than a tenth of each default (see DefaultLimits for the reasons).
//
// A document with active content is refused with ErrActiveContent, by
// Inspect and Sign alike: what the official saw on the kiosk must be
// what any viewer of the signed letter shows, and code or actions that
// run in a viewer can change that after the signature. Every object in
// the cross-reference is read, not only what the catalog reaches. Refused
// are JavaScript (actions, /JS and the document's /JavaScript name tree),
// Launch, SubmitForm, ImportData, ResetForm, Hide, SetOCGState, GoToR,
// Sound, Movie and Rendition actions, Named actions other than the four
// page navigations, URI actions to anything but http, https, mailto and
// tel addresses, an /OpenAction other than a destination or GoTo, any
// /AA additional actions, XFA forms, 3D and RichMedia annotations,
// portfolios (/Collection), and, unless Limits.AllowEmbeddedFiles,
// embedded files. Links (GoTo, plain URI) and named page navigation are
// accepted. The reasons, with the sections of ISO 32000-1, are in
// active.go.
//
// github.com/digitorus/pdfsign was evaluated and not used: it writes
// SubFilter adbe.pkcs7.detached, its pkcs7 dependency always adds a
// signing-time attribute and an adbe-revocationInfoArchival attribute,
// a failing timestamp authority fails the whole signature, its HTTP
// client takes no context, and its visible appearance is an image or a
// single line of text, with no way to draw a QR code.
package pades
