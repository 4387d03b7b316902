package tsa

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"time"
)

// Authority is one RFC 3161 timestamp authority.
type Authority struct {
	URL        string           // http or https
	Username   string           // HTTP Basic authentication when non-empty
	Password   string           // read from its file by the caller
	ClientCert *tls.Certificate // TLS client certificate, optional
	RootCAs    *x509.CertPool   // for an https server's certificate; nil means the system roots
}

// Config configures a Client.
type Config struct {
	// Authorities are tried in order; the first good token wins.
	Authorities []Authority
	// Policy is the requested reqPolicy; when set, the token's policy
	// must equal it.
	Policy asn1.ObjectIdentifier
	// Roots are the CAs the authority's certificate must chain to; nil
	// leaves the chain unchecked.
	Roots         *x509.CertPool
	Intermediates *x509.CertPool
	// MaxSkew refuses a token whose genTime is further than this from
	// Now; zero leaves the skew unchecked.
	MaxSkew time.Duration
	// Timeout bounds one authority's exchange; zero means 10 seconds.
	Timeout time.Duration
	// Now is the local clock; nil means time.Now.
	Now func() time.Time
	// Observer sees every attempt; nil means none.
	Observer Observer
}

// Observer sees every attempt, for metrics: the exchange's latency, the
// token's clock skew (genTime minus the local time when the answer
// arrived) and the error (nil on success). The skew is zero when no token
// answering the query was got; a token refused for its policy, its chain
// or its skew still reports it, so a drifting authority shows on a
// dashboard before it is refused. Stamp calls it from the caller's
// goroutine, so concurrent Stamps call it concurrently.
type Observer interface {
	ObserveTSA(url string, latency, skew time.Duration, err error)
}

// Token is a checked timestamp token.
type Token struct {
	DER     []byte // the TimeStampToken ContentInfo
	GenTime time.Time
	URL     string            // the authority that answered
	Signer  *x509.Certificate // the authority's certificate
	// Chain is Signer first, as verified; Signer alone when Config.Roots
	// is nil.
	Chain []*x509.Certificate
}

// ErrTimestamp matches, through errors.Is, every failure of Stamp. To the
// caller it is transient: another try, later or elsewhere, may succeed.
// Its message names each authority tried and why it failed.
var ErrTimestamp = errors.New("tsa: no timestamp")
