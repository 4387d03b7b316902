package daemon_test

import (
	"context"
	"crypto/x509"
	"testing"
	"time"

	"github.com/tekenid/teken/daemon/kiosk"
	"github.com/tekenid/teken/internal/tekentest"
)

// A token whose certificate cannot sign now is told so plainly, and its
// letters are listed but cannot be signed.
func TestCertificateChecks(t *testing.T) {
	trusted := tekentest.NewSignerCA(t)
	other := tekentest.NewSignerCA(t)
	tm := tekentest.Start(t, trusted)
	ctx := context.Background()
	cases := []struct {
		name   string
		ca     *tekentest.SignerCA
		adjust func(*x509.Certificate)
		code   string
	}{
		{"expired", trusted, func(c *x509.Certificate) {
			c.NotBefore, c.NotAfter = time.Now().Add(-48*time.Hour), time.Now().Add(-time.Hour)
		}, kiosk.CodeCertExpired},
		{"not yet valid", trusted, func(c *x509.Certificate) {
			c.NotBefore = time.Now().Add(time.Hour)
		}, kiosk.CodeCertNotYetValid},
		{"not for signing", trusted, func(c *x509.Certificate) {
			c.KeyUsage = x509.KeyUsageKeyEncipherment
		}, kiosk.CodeCertUsage},
		{"another CA", other, nil, kiosk.CodeCertUntrusted},
	}
	k := tm.Kiosk()
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var adjust []func(*x509.Certificate)
			if tc.adjust != nil {
				adjust = append(adjust, tc.adjust)
			}
			o := tc.ca.NewOfficial(t, "Pejabat "+tc.name, "19800101200001100"+string(rune('1'+i)), "123456", uint32(8001+i), adjust...)
			j := tm.Dispatch(o, "Surat untuk "+tc.name, "000/"+tc.name)
			if err := o.Card.Insert(ctx, tm.PCSCD.VPCDAddr(0)); err != nil {
				t.Fatal(err)
			}
			v := k.Await(tc.code, func(v kiosk.View) bool {
				return v.State == kiosk.StateToken && v.Error != nil && v.Error.Code == tc.code
			})
			if v.CanSign || len(v.Jobs) != 1 {
				t.Errorf("can sign %v with %d letters shown", v.CanSign, len(v.Jobs))
			}
			if code, body := k.Post("/api/sign", map[string]any{"job_ids": []string{j.JobID}, "pin": "123456"}); code == 200 || tekentest.ErrorCode(body) != tc.code {
				t.Errorf("sign with a %s certificate: %d %v", tc.name, code, body)
			}
			o.Card.Remove()
			k.Await("idle", func(v kiosk.View) bool { return v.State == kiosk.StateIdle })
		})
	}
}
