package daemon_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"

	"github.com/tekenid/teken/daemon"
	"github.com/tekenid/teken/daemon/kiosk"
	"github.com/tekenid/teken/internal/tekentest"
)

// TestTokenPolicyThroughPCSCD runs the token policy against software tokens
// on the real pcscd: the factory credentials read from the token's own
// metadata, the attestation read in a session and verified against the
// configured root.
func TestTokenPolicyThroughPCSCD(t *testing.T) {
	ca := tekentest.NewSignerCA(t)
	enrolled := ca.NewOfficial(t, "Siti Rahmawati", "198703152010012003", "246810", 3001)
	foreign := ca.NewOfficial(t, "Budi Santoso", "197501012000031001", "135791", 3002)
	// Each software token has its own attestation root; trusting only the
	// first's makes the second's attestation one of an unknown maker.
	root, err := enrolled.Card.AttestationRoot()
	if err != nil {
		t.Fatal(err)
	}
	rootsFile := writeCerts(t, root)
	tm := tekentest.Start(t, ca, func(c *daemon.Config) {
		c.Token = daemon.TokenConfig{RequireAttestation: true, AttestationRoots: []string{rootsFile}}
	})
	j := tm.Dispatch(enrolled, "Undangan Rapat", "005/1/SETDA/XII/2026")
	k := tm.Kiosk()
	ctx := context.Background()

	tap := func(o *tekentest.Official) {
		t.Helper()
		k.Await("idle", func(v kiosk.View) bool { return v.State == kiosk.StateIdle })
		if err := o.Card.Insert(ctx, tm.PCSCD.VPCDAddr(0)); err != nil {
			t.Fatal(err)
		}
	}
	leave := func(o *tekentest.Official) {
		t.Helper()
		if err := o.Card.Remove(); err != nil {
			t.Fatal(err)
		}
	}

	tap(enrolled)
	k.Await("the attested token's letter", func(v kiosk.View) bool {
		return v.State == kiosk.StateToken && v.CanSign && len(v.Jobs) == 1 && v.Jobs[0].ID == j.JobID
	})
	leave(enrolled)

	tap(foreign)
	k.Await("the other maker's token refused", func(v kiosk.View) bool {
		return v.State == kiosk.StateToken && !v.CanSign && v.Error != nil && v.Error.Code == kiosk.CodeTokenNotSetUp
	})
	leave(foreign)
	if !bytes.Contains(tm.Logs.Bytes(), []byte("serial=3002 reason=\"verify attestation: attestation not valid")) {
		t.Errorf("no refusal with its reason in the log:\n%s", tm.Logs.Bytes())
	}

}

// TestTokenPolicyFactoryPINThroughPCSCD: a token still holding the factory
// PIN and PUK, as its own metadata says, is refused.
func TestTokenPolicyFactoryPINThroughPCSCD(t *testing.T) {
	ca := tekentest.NewSignerCA(t)
	factory := ca.NewOfficial(t, "Ani Wijaya", "198001012005012001", "123456", 3003)
	tm := tekentest.Start(t, ca, func(c *daemon.Config) {
		c.Token = daemon.TokenConfig{RefuseDefaultPIN: true}
	})
	k := tm.Kiosk()
	k.Await("idle", func(v kiosk.View) bool { return v.State == kiosk.StateIdle })
	if err := factory.Card.Insert(context.Background(), tm.PCSCD.VPCDAddr(0)); err != nil {
		t.Fatal(err)
	}
	k.Await("the factory PIN refused", func(v kiosk.View) bool {
		return v.State == kiosk.StateToken && !v.CanSign && v.Error != nil && v.Error.Code == kiosk.CodeTokenNotSetUp
	})
	if !bytes.Contains(tm.Logs.Bytes(), []byte("serial=3003 reason=\"PIN and PUK are still the factory defaults\"")) {
		t.Errorf("no refusal with its reason in the log:\n%s", tm.Logs.Bytes())
	}
	if bytes.Contains(tm.Logs.Bytes(), []byte("123456")) {
		t.Error("a PIN is in the log")
	}
}

func writeCerts(t *testing.T, certs ...*x509.Certificate) string {
	t.Helper()
	var b bytes.Buffer
	for _, c := range certs {
		if err := pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(t.TempDir(), "attestation-roots.pem")
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
