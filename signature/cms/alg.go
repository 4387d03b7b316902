package cms

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/asn1"
	"fmt"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// Object identifiers: RFC 5652 §4 and §11 (content types and attributes),
// RFC 5035 §5.4 (signing-certificate-v2), RFC 3161 appendix A
// (id-aa-signatureTimeStampToken), RFC 5754 (SHA-2), RFC 4055 (RSA),
// RFC 5758 §3.2 (ECDSA), RFC 8410 §3 and RFC 8419 (Ed25519).
var (
	oidData                     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
	oidSignedData               = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}
	oidAttrContentType          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 3}
	oidAttrMessageDigest        = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 4}
	oidAttrSigningTime          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 5}
	oidAttrSigningCertificateV2 = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 2, 47}

	oidAttrSignatureTimeStampToken = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 2, 14}

	oidSHA256 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	oidSHA384 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 2}
	oidSHA512 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 3}

	oidRSAEncryption   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}
	oidSHA256WithRSA   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}
	oidSHA384WithRSA   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 12}
	oidSHA512WithRSA   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 13}
	oidRSASSAPSS       = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 10}
	oidMGF1            = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 8}
	oidECPublicKey     = asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1}
	oidECDSAWithSHA256 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}
	oidECDSAWithSHA384 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 3}
	oidECDSAWithSHA512 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 4}
	oidEd25519         = asn1.ObjectIdentifier{1, 3, 101, 112}
)

// hashes are the digest algorithms this package produces and accepts; SHA-1
// and MD5 are deliberately absent.
var hashes = []struct {
	hash  crypto.Hash
	oid   asn1.ObjectIdentifier
	rsa   asn1.ObjectIdentifier
	ecdsa asn1.ObjectIdentifier
}{
	{crypto.SHA256, oidSHA256, oidSHA256WithRSA, oidECDSAWithSHA256},
	{crypto.SHA384, oidSHA384, oidSHA384WithRSA, oidECDSAWithSHA384},
	{crypto.SHA512, oidSHA512, oidSHA512WithRSA, oidECDSAWithSHA512},
}

func hashOID(h crypto.Hash) (asn1.ObjectIdentifier, bool) {
	for _, e := range hashes {
		if e.hash == h {
			return e.oid, true
		}
	}
	return nil, false
}

func hashFromOID(oid asn1.ObjectIdentifier) (crypto.Hash, bool) {
	for _, e := range hashes {
		if e.oid.Equal(oid) {
			return e.hash, true
		}
	}
	return 0, false
}

// DefaultHash returns the digest algorithm used for a key when
// SignOptions.Hash is zero: SHA-384 for P-384, SHA-512 for P-521 and
// Ed25519 (RFC 8419 §3.1 requires it with signed attributes), SHA-256 for
// P-256 and RSA. The daemon calls it to hash a document once before
// SignDigest.
func DefaultHash(pub crypto.PublicKey) (crypto.Hash, error) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return crypto.SHA256, nil
		case elliptic.P384():
			return crypto.SHA384, nil
		case elliptic.P521():
			return crypto.SHA512, nil
		}
		return 0, fmt.Errorf("cms: unsupported curve %s", k.Curve.Params().Name)
	case *rsa.PublicKey:
		return crypto.SHA256, nil
	case ed25519.PublicKey:
		return crypto.SHA512, nil
	}
	return 0, fmt.Errorf("cms: unsupported key type %T", pub)
}

type keyKind int

const (
	keyEC keyKind = iota + 1
	keyRSA
	// keyEd25519 signs its input itself (pure EdDSA, RFC 8032 §5.1.6): the
	// DER signed attributes in CMS (RFC 8419 §3.2), the document digest
	// in a raw signature. hash is then the digest of the content only.
	keyEd25519
)

// algorithm is one resolved signature scheme: key kind, digest and, for
// RSA, the padding.
type algorithm struct {
	kind keyKind
	hash crypto.Hash
	pss  bool
	salt int // PSS salt length in bytes
}

// resolve picks the algorithm for signing with pub under the options.
func resolve(pub crypto.PublicKey, h crypto.Hash, pss bool) (algorithm, error) {
	if h == 0 {
		var err error
		if h, err = DefaultHash(pub); err != nil {
			return algorithm{}, err
		}
	}
	if _, ok := hashOID(h); !ok {
		return algorithm{}, fmt.Errorf("cms: unsupported digest algorithm %v", h)
	}
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if _, err := DefaultHash(pub); err != nil {
			return algorithm{}, err
		}
		if pss {
			return algorithm{}, fmt.Errorf("cms: PSS requested for an ECDSA key")
		}
		return algorithm{kind: keyEC, hash: h}, nil
	case *rsa.PublicKey:
		a := algorithm{kind: keyRSA, hash: h, pss: pss}
		if pss {
			a.salt = h.Size()
		}
		return a, nil
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return algorithm{}, fmt.Errorf("cms: Ed25519 public key of %d bytes", len(k))
		}
		if pss {
			return algorithm{}, fmt.Errorf("cms: PSS requested for an Ed25519 key")
		}
		return algorithm{kind: keyEd25519, hash: h}, nil
	}
	return algorithm{}, fmt.Errorf("cms: unsupported key type %T", pub)
}

// signedInput is what the key signs over the DER signed attributes: their
// digest, or for Ed25519 the attributes themselves.
func (a algorithm) signedInput(attrs []byte) []byte {
	if a.kind == keyEd25519 {
		return attrs
	}
	h := a.hash.New()
	h.Write(attrs)
	return h.Sum(nil)
}

// checkCMS refuses what RFC 8419 §3.1 forbids in a SignedData: Ed25519
// with signed attributes over any digest but SHA-512.
func (a algorithm) checkCMS() error {
	if a.kind == keyEd25519 && a.hash != crypto.SHA512 {
		return fmt.Errorf("cms: Ed25519 needs SHA-512 as the digest algorithm (RFC 8419 §3.1), not %v", a.hash)
	}
	return nil
}

// signerOpts are the options handed to crypto.Signer.Sign. PSS uses a salt
// as long as the digest, the value RFC 4055 §3.1 recommends and the one
// written into RSASSA-PSS-params.
func (a algorithm) signerOpts() crypto.SignerOpts {
	if a.kind == keyEd25519 {
		return crypto.Hash(0)
	}
	if a.pss {
		return &rsa.PSSOptions{SaltLength: a.salt, Hash: a.hash}
	}
	return a.hash
}

// verify checks sig over digest with pub; for Ed25519 digest is the
// signed input itself (signedInput).
func (a algorithm) verify(pub crypto.PublicKey, digest, sig []byte) error {
	switch k := pub.(type) {
	case ed25519.PublicKey:
		if a.kind != keyEd25519 {
			return fmt.Errorf("%w: Ed25519 key with another signature algorithm", ErrBadSignature)
		}
		if len(k) != ed25519.PublicKeySize || !ed25519.Verify(k, digest, sig) {
			return ErrBadSignature
		}
		return nil
	case *ecdsa.PublicKey:
		if a.kind != keyEC {
			return fmt.Errorf("%w: ECDSA key with another signature algorithm", ErrBadSignature)
		}
		if !ecdsa.VerifyASN1(k, digest, sig) {
			return ErrBadSignature
		}
		return nil
	case *rsa.PublicKey:
		if a.kind != keyRSA {
			return fmt.Errorf("%w: RSA key with another signature algorithm", ErrBadSignature)
		}
		var err error
		if a.pss {
			err = rsa.VerifyPSS(k, a.hash, digest, sig, &rsa.PSSOptions{SaltLength: a.salt, Hash: a.hash})
		} else {
			err = rsa.VerifyPKCS1v15(k, a.hash, digest, sig)
		}
		if err != nil {
			return fmt.Errorf("%w: %w", ErrBadSignature, err)
		}
		return nil
	}
	return fmt.Errorf("%w: key type %T", ErrUnsupported, pub)
}

// addDigestAlgorithm writes the digest AlgorithmIdentifier with absent
// parameters, as RFC 5754 §2 says SHA-2 identifiers SHOULD be encoded.
func addDigestAlgorithm(b *cryptobyte.Builder, h crypto.Hash) {
	oid, _ := hashOID(h)
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(oid)
	})
}

// addHashWithNULL writes a hash AlgorithmIdentifier with NULL parameters, the
// form RFC 4055 §2.1 requires inside RSASSA-PSS-params.
func addHashWithNULL(b *cryptobyte.Builder, h crypto.Hash) {
	oid, _ := hashOID(h)
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(oid)
		b.AddASN1NULL()
	})
}

// addSignatureAlgorithm writes the SignerInfo signatureAlgorithm.
func (a algorithm) addSignatureAlgorithm(b *cryptobyte.Builder) {
	var e = hashes[0]
	for _, x := range hashes {
		if x.hash == a.hash {
			e = x
		}
	}
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		switch {
		case a.kind == keyEd25519:
			// RFC 8410 §3: parameters MUST be absent.
			b.AddASN1ObjectIdentifier(oidEd25519)
		case a.kind == keyEC:
			// RFC 5758 §3.2: parameters MUST be absent.
			b.AddASN1ObjectIdentifier(e.ecdsa)
		case a.pss:
			// RFC 4055 §3.1: RSASSA-PSS-params; trailerField is left at
			// its DEFAULT and so omitted.
			b.AddASN1ObjectIdentifier(oidRSASSAPSS)
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.Tag(0).ContextSpecific().Constructed(), func(b *cryptobyte.Builder) {
					addHashWithNULL(b, a.hash)
				})
				b.AddASN1(cbasn1.Tag(1).ContextSpecific().Constructed(), func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						b.AddASN1ObjectIdentifier(oidMGF1)
						addHashWithNULL(b, a.hash)
					})
				})
				b.AddASN1(cbasn1.Tag(2).ContextSpecific().Constructed(), func(b *cryptobyte.Builder) {
					b.AddASN1Int64(int64(a.salt))
				})
			})
		default:
			// RFC 4055 §5: parameters MUST be NULL.
			b.AddASN1ObjectIdentifier(e.rsa)
			b.AddASN1NULL()
		}
	})
}
