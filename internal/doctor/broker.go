package doctor

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"

	"github.com/tekenid/teken/daemon"
	"github.com/tekenid/teken/transport"
)

// ClientIDSuffix makes the client id tekenctl doctor connects under:
// the terminal's own with this suffix. A broker drops the older of two
// connections with one client id (MQTT 3.1.1 §3.1.4), so the doctor
// never uses tekend's.
const ClientIDSuffix = "-doctor"

// brokers connects to each broker in turn with the terminal's own TLS
// trust, client certificate, user and password, in a clean session that
// it closes at once, so that the broker keeps nothing of it.
func (d *checkup) brokers(ctx context.Context) {
	conn, err := daemon.BrokerConnection(d.cfg)
	if err != nil {
		d.report(HealthFail, "broker", "not checked: its files do not load (see configuration)", "fix the configuration first")
		return
	}
	if len(conn.Brokers) == 0 {
		d.report(HealthFail, "broker", "none configured", "set broker.urls")
		return
	}
	conn.ClientID = d.cfg.ClientID() + ClientIDSuffix
	conn.Logger = d.o.Logger
	var how []string
	if conn.TLS != nil {
		how = append(how, "TLS pinned to "+d.cfg.Broker.CAFile)
		if len(conn.TLS.Certificates) > 0 {
			how = append(how, "client certificate "+d.cfg.Broker.CertFile)
		}
	}
	if conn.Username != "" {
		how = append(how, "user "+conn.Username)
	}
	how = append(how, "client id "+conn.ClientID)
	for _, u := range d.cfg.Broker.URLs {
		c := conn
		c.Brokers = []string{u}
		pctx, cancel := context.WithTimeout(ctx, d.o.Timeout)
		// A clean-session connect and disconnect: the probe ClearSession
		// makes, under the doctor's own client id.
		err := transport.ClearSession(pctx, c)
		cancel()
		what := "broker " + u
		if err != nil {
			// ClearSession names itself and the client id; the probe
			// is a connect, and the client id is in the fix.
			if inner := errors.Unwrap(err); inner != nil {
				err = inner
			}
			d.report(HealthFail, what, "cannot connect: "+err.Error(), brokerFix(err, conn.ClientID))
			continue
		}
		d.report(HealthOK, what, "connected ("+strings.Join(how, ", ")+")", "")
	}
}

// brokerFix says what to do about a failed connect. paho's refusals
// (CONNACK return codes, MQTT 3.1.1 §3.2.2.3) reach us as text only: the
// transport passes paho's errors on, and only it may import paho.
func brokerFix(err error, clientID string) string {
	msg := err.Error()
	var unknownCA x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	switch {
	case errors.As(err, &unknownCA) || strings.Contains(msg, "certificate signed by unknown authority"):
		return "the broker's certificate is not from the CA in broker.ca_file: get the CA that signed it (the province's PKI team)"
	case errors.As(err, &hostname) || strings.Contains(msg, "certificate is valid for") || strings.Contains(msg, "certificate is not valid for"):
		return "the broker's certificate does not name this URL's host: use the name it was issued for in broker.urls"
	case errors.As(err, &invalid) || strings.Contains(msg, "x509: "):
		return "the broker's certificate is not valid now: is the clock right? else the broker needs a new one"
	case strings.Contains(msg, "bad user name or password"):
		return "the broker refused broker.username with the password in broker.password_file"
	case strings.Contains(msg, "not Authorized"):
		return fmt.Sprintf("the broker refused the login: check broker.username, broker.password_file and the client certificate; an ACL on client ids must allow %s too", clientID)
	case strings.Contains(msg, "identifier rejected"):
		return fmt.Sprintf("the broker refused the client id %s: allow it beside tekend's", clientID)
	case strings.Contains(msg, "remote error: tls"):
		return "the broker refused the TLS handshake: check broker.cert_file and broker.key_file (its client certificate)"
	case strings.Contains(msg, "first record does not look like a TLS handshake"):
		return "the broker speaks plain MQTT there: use its TLS port"
	case strings.Contains(msg, "connection refused"):
		return "nothing listens there: check the host and port in broker.urls and that the broker runs"
	case strings.Contains(msg, "no such host"):
		return "the name does not resolve: check broker.urls and DNS"
	case errors.Is(err, context.DeadlineExceeded) || strings.Contains(msg, "timeout"):
		return "no answer: check broker.urls, the firewall and the route to the broker"
	}
	return "check broker.urls, the TLS files and the credentials"
}
