// Package cms makes and checks the signatures that a terminal returns to the
// central letter system.
//
// The main format is a detached CMS SignedData (RFC 5652) in DER with the
// CAdES-BES signed attributes: content-type (id-data), message-digest,
// signing-time and signing-certificate-v2 (RFC 5035, one ESSCertIDv2 over
// the signer certificate with SHA-256). The signer is identified by issuer
// and serial number (SignerInfo version 1) and its certificate, with any
// chain given, is embedded. For PAdES, SignOptions can leave out
// signing-time and add an RFC 3161 signature-time-stamp as an unsigned
// attribute; AddSignatureTimestamp adds one later to a finished
// signature, without the signer, since unsigned attributes are outside
// what is signed (RFC 5652 §5.3; RFC 5126 §5.11.4). It verifies with
// standard tools:
//
//	openssl cms -verify -binary -inform DER -in SIG -content DOC -CAfile CA -purpose any
//
// Algorithms: ECDSA P-256 with SHA-256, P-384 with SHA-384 (the default
// digest follows the curve, see DefaultHash), RSA with PKCS#1 v1.5
// (sha256WithRSAEncryption) or, on request, RSASSA-PSS with MGF1 over the
// same hash and a salt as long as the digest, and Ed25519 as RFC 8419 has
// it (id-Ed25519, SHA-512 for the content). OpenSSL 3 does not verify
// Ed25519 with signed attributes (openssl/openssl#32248); GnuTLS does:
//
//	certtool --p7-verify --inder --infile SIG --load-data DOC --load-ca-certificate CA
//
// A PIV token signs digests, not messages: Sign and SignDigest call the
// crypto.Signer exactly once per document, with the digest of the
// DER-encoded signed attributes (Ed25519, which signs messages, with the
// attributes themselves), and check the returned signature against the
// certificate before encoding it. The raw format (SignRaw, VerifyRaw) is
// the bare signature over the document digest, for integrations that do
// not speak CMS.
//
// Verify accepts only the profile Sign produces (DER, detached, one
// signer; unsigned attributes are not checked) and reports failures as
// errors that match ErrInvalid, so a caller can tell a bad signature from
// its own mistake.
//
// The package is built on golang.org/x/crypto/cryptobyte rather than an
// existing PKCS #7 library. github.com/smallstep/pkcs7 (v0.2.3) and
// github.com/digitorus/pkcs7 both sign RSA only with PKCS#1 v1.5 (they pass
// a crypto.Hash as the SignerOpts, so PSS cannot be requested and no
// RSASSA-PSS-params are written), neither writes or checks
// signing-certificate-v2, both need the whole content rather than a digest
// computed once, and the current digitorus release needs a newer Go than
// this module. What remains to write is a few hundred lines of DER.
package cms
