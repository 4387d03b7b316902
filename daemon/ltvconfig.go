package daemon

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/asn1"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/signature/revocation"
	"github.com/tekenid/teken/signature/tsa"
)

// TSAConfig is [tsa]: the timestamp authorities beyond signing.tsa_url
// and how their answers are checked.
type TSAConfig struct {
	// Authorities are tried after signing.tsa_url, in order, until one
	// gives a good token.
	Authorities []TSAAuthorityConfig `toml:"authority"`
	// Policy is the TSA policy OID asked for and required in the token.
	Policy string `toml:"policy"`
	// CAFiles are the CAs the authority's certificate must chain to;
	// empty leaves the chain unchecked (the token's signature and
	// ESSCertIDv2 still are).
	CAFiles []string `toml:"ca_files"`
	// MaxSkew refuses a token whose time is further than this from the
	// terminal's clock; zero turns the check off.
	MaxSkew Duration `toml:"max_skew"`
}

// TSAAuthorityConfig is one [[tsa.authority]].
type TSAAuthorityConfig struct {
	URL          string `toml:"url"`
	Username     string `toml:"username"`
	PasswordFile string `toml:"password_file"`
	// CAFile is the CA of an https authority's server certificate;
	// empty means the system's CAs.
	CAFile   string `toml:"ca_file"`
	CertFile string `toml:"cert_file"`
	KeyFile  string `toml:"key_file"`
}

// RevocationConfig is [revocation]: whether and how the signer's
// certificate and its CAs are checked for revocation (OCSP, then CRL).
type RevocationConfig struct {
	// Check is off, prefer (checked at each tap; a revoked or unknown
	// certificate cannot sign, and one whose status cannot be fetched
	// signs with a warning) or require (cannot sign either).
	Check string `toml:"check"`
	// OCSPResponder asks this responder for every certificate instead
	// of the one the certificate names.
	OCSPResponder string   `toml:"ocsp_responder"`
	Timeout       Duration `toml:"timeout"`
}

// The values of revocation.check.
const (
	RevocationOff     = "off"
	RevocationPrefer  = "prefer"
	RevocationRequire = "require"
)

// levels are the values of signing.level, weakest first.
var levels = []string{api.LevelBB, api.LevelBT, api.LevelBLT, api.LevelBLTA}

// levelRank orders levels; -1 for an unknown one.
func levelRank(l string) int { return slices.Index(levels, l) }

// authorities are the timestamp authorities in the order tried:
// signing.tsa_url (without credentials), then [[tsa.authority]].
func (c *Config) authorities() []TSAAuthorityConfig {
	var out []TSAAuthorityConfig
	if c.Signing.TSAURL != "" {
		out = append(out, TSAAuthorityConfig{URL: c.Signing.TSAURL})
	}
	return append(out, c.TSA.Authorities...)
}

// targetLevel is the level signatures are taken to.
func (c *Config) targetLevel() string {
	if c.Signing.Level != "" {
		return c.Signing.Level
	}
	if len(c.authorities()) > 0 {
		return api.LevelBT
	}
	return api.LevelBB
}

// validateLTV checks [tsa], [revocation] and signing.level together:
// a level needs what it is made of.
func (c *Config) validateLTV(bad func(field string, value any, format string, args ...any)) {
	for i, a := range c.TSA.Authorities {
		field := fmt.Sprintf("tsa.authority[%d]", i)
		u, err := url.Parse(a.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad(field+".url", a.URL, "want an http or https URL of an RFC 3161 timestamp authority")
			continue
		}
		if (a.Username == "") != (a.PasswordFile == "") {
			bad(field+".username", a.Username, "username and password_file go together (HTTP Basic authentication)")
		}
		if strings.ContainsAny(a.Username, ":\r\n") {
			bad(field+".username", a.Username, "a Basic authentication user name holds no colon or line break")
		}
		if (a.CertFile == "") != (a.KeyFile == "") {
			bad(field+".cert_file", a.CertFile, "cert_file and key_file go together (TLS client certificate)")
		}
		if (a.CertFile != "" || a.CAFile != "") && u.Scheme != "https" {
			bad(field+".url", a.URL, "ca_file and a client certificate need an https URL")
		}
	}
	if c.TSA.Policy != "" {
		if _, err := parseOID(c.TSA.Policy); err != nil {
			bad("tsa.policy", c.TSA.Policy, "want a dotted object identifier such as \"2.16.360.1.1.1.2\"")
		}
	}
	if c.TSA.MaxSkew < 0 || c.TSA.MaxSkew > Duration(time.Hour) {
		bad("tsa.max_skew", time.Duration(c.TSA.MaxSkew), "want between 0 (no check) and 1h")
	}
	switch c.Revocation.Check {
	case RevocationOff, RevocationPrefer, RevocationRequire:
	default:
		bad("revocation.check", c.Revocation.Check, "want off, prefer or require")
	}
	if r := c.Revocation.OCSPResponder; r != "" {
		if u, err := url.Parse(r); err != nil || u.Scheme != "http" || u.Host == "" {
			bad("revocation.ocsp_responder", r, "want the http URL of an OCSP responder (OCSP is signed, so it needs no https)")
		}
	}
	if c.Revocation.Timeout < Duration(time.Second) || c.Revocation.Timeout > Duration(2*time.Minute) {
		bad("revocation.timeout", time.Duration(c.Revocation.Timeout), "want between 1s and 2m")
	}
	if c.Signing.Level != "" && levelRank(c.Signing.Level) < 0 {
		bad("signing.level", c.Signing.Level, "want B-B, B-T, B-LT or B-LTA")
		return
	}
	level := c.targetLevel()
	if levelRank(level) >= levelRank(api.LevelBT) && len(c.authorities()) == 0 {
		bad("signing.level", level, "%s needs a timestamp authority: signing.tsa_url or [[tsa.authority]]", level)
	}
	if levelRank(level) >= levelRank(api.LevelBLT) && c.Revocation.Check == RevocationOff {
		bad("signing.level", level, "%s needs revocation data: revocation.check prefer or require", level)
	}
	if c.Signing.RequireLevel && levelRank(c.Signing.Level) < levelRank(api.LevelBT) {
		bad("signing.require_level", true, "name the level required, B-T or more, in signing.level")
	}
	if levelRank(level) >= levelRank(api.LevelBLT) && len(c.Signing.SignerCAFiles) == 0 {
		bad("signing.level", level, "%s needs the signer's chain: signing.signer_ca_files", level)
	}
}

// parseOID reads a dotted object identifier.
func parseOID(s string) (asn1.ObjectIdentifier, error) {
	parts := strings.Split(s, ".")
	if len(parts) < 2 {
		return nil, fmt.Errorf("object identifier %q: want at least two arcs", s)
	}
	oid := make(asn1.ObjectIdentifier, len(parts))
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || (p != "0" && strings.HasPrefix(p, "0")) {
			return nil, fmt.Errorf("object identifier %q: arc %q", s, p)
		}
		oid[i] = n
	}
	if oid[0] > 2 || (oid[0] < 2 && oid[1] > 39) {
		return nil, fmt.Errorf("object identifier %q: first arcs out of range", s)
	}
	return oid, nil
}

// loadTSA reads the files of the timestamp authorities and makes their
// client, and returns tsa.ca_files's pool beside it (nil when none is
// named); the client is nil without any authority. Every bad file is
// reported at once.
func loadTSA(c Config, obs tsa.Observer) (*tsa.Client, *x509.CertPool, error) {
	list := c.authorities()
	if len(list) == 0 {
		roots, err := loadCAFiles("tsa.ca_files", c.TSA.CAFiles)
		return nil, roots, err
	}
	var errs problems
	cfg := tsa.Config{
		Timeout: time.Duration(c.Signing.TSATimeout), MaxSkew: time.Duration(c.TSA.MaxSkew), Observer: obs,
	}
	if c.TSA.Policy != "" {
		oid, err := parseOID(c.TSA.Policy)
		if err != nil {
			errs = append(errs, fmt.Errorf("tsa.policy: %w", err))
		}
		cfg.Policy = oid
	}
	if len(c.TSA.CAFiles) > 0 {
		roots, err := loadCAFiles("tsa.ca_files", c.TSA.CAFiles)
		if err != nil {
			errs = append(errs, err)
		}
		cfg.Roots = roots
	}
	for i, a := range list {
		field := fmt.Sprintf("tsa.authority[%d]", i-len(list)+len(c.TSA.Authorities))
		if c.Signing.TSAURL != "" && i == 0 {
			field = "signing.tsa_url"
		}
		auth := tsa.Authority{URL: a.URL, Username: a.Username}
		if a.PasswordFile != "" {
			pw, err := readPassword(a.PasswordFile)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s.password_file: %w", field, err))
			}
			auth.Password = pw
		}
		if a.CAFile != "" {
			pool, err := loadCAFiles(field+".ca_file", []string{a.CAFile})
			if err != nil {
				errs = append(errs, err)
			}
			auth.RootCAs = pool
		}
		if a.CertFile != "" {
			if err := checkKeyPair(field, a.CertFile, a.KeyFile); err != nil {
				errs = append(errs, err)
			} else if pair, err := tls.LoadX509KeyPair(a.CertFile, a.KeyFile); err != nil {
				errs = append(errs, fmt.Errorf("%s.key_file: %w", field, err))
			} else {
				auth.ClientCert = &pair
			}
		}
		cfg.Authorities = append(cfg.Authorities, auth)
	}
	if err := errs.err(); err != nil {
		return nil, nil, err
	}
	client, err := tsa.New(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("timestamp authorities: %w", err)
	}
	return client, cfg.Roots, nil
}

// loadRevocation makes the revocation checker; nil when revocation.check
// is off.
func loadRevocation(c Config) *revocation.Checker {
	if c.Revocation.Check == RevocationOff {
		return nil
	}
	return revocation.New(revocation.Config{
		Client:    &http.Client{},
		Responder: c.Revocation.OCSPResponder,
		Timeout:   time.Duration(c.Revocation.Timeout),
	})
}

// signerCAs are the signer CAs in force: the anchors, and their
// certificates; a nil pool means any CA.
type signerCAs func() (*x509.CertPool, []*x509.Certificate)

// chainOf is the certificate chain of cert, leaf first and anchor last, as
// the revocation checker takes it. An issuing CA listed in
// signing.signer_ca_files beside its root is an intermediate of the chain
// up to that root, so that its own revocation is checked and the
// validation data name the root; a CA listed without its root is the
// chain's end. Without anchors (any CA accepted) there is no chain to
// check.
func chainOf(cert *x509.Certificate, anchors *x509.CertPool, cas []*x509.Certificate, at time.Time) ([]*x509.Certificate, error) {
	if anchors == nil {
		return nil, nil
	}
	opts := x509.VerifyOptions{CurrentTime: at, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	haveRoot := false
	for _, c := range cas {
		if bytes.Equal(c.RawIssuer, c.RawSubject) && c.CheckSignatureFrom(c) == nil {
			roots.AddCert(c)
			haveRoot = true
		} else {
			inter.AddCert(c)
		}
	}
	if haveRoot {
		opts.Roots, opts.Intermediates = roots, inter
		if chains, err := cert.Verify(opts); err == nil {
			return chains[0], nil
		}
	}
	opts.Roots, opts.Intermediates = anchors, nil
	chains, err := cert.Verify(opts)
	if err != nil {
		return nil, err
	}
	return chains[0], nil
}

// ltvPartsOf makes what takes signatures beyond B-B under cfg: the
// authorities' client (their files read now) with the run's revocation
// checker.
func (d *Daemon) ltvPartsOf(cfg Config) (*ltvParts, error) {
	client, roots, err := loadTSA(cfg, d.metrics)
	if err != nil {
		return nil, err
	}
	p := &ltvParts{level: cfg.targetLevel(), explicit: cfg.Signing.Level != "", require: cfg.Signing.RequireLevel, tsa: client, tsaRoots: roots}
	if d.revocation != nil {
		p.revocation = d.revocation
	}
	return p, nil
}
