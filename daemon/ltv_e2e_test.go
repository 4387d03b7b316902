package daemon_test

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/daemon"
	"github.com/tekenid/teken/daemon/kiosk"
	"github.com/tekenid/teken/internal/demo"
	"github.com/tekenid/teken/internal/tekentest"
	"github.com/tekenid/teken/internal/testenv"
	"github.com/tekenid/teken/signature/pades"
)

// A letter taken to B-LTA by a real tekend, as IT configures it for BSSN:
// the first authority is down, the second needs a password; the
// official's certificate and its CA name `openssl ocsp` responders, which
// revocation.check = require asks at the tap and for the DSS. The signed
// PDF verifies at B-LTA, and the metrics say which authority failed.
func TestLevelsEndToEnd(t *testing.T) {
	chain := testenv.NewChain(t)
	roots := x509.NewCertPool()
	roots.AddCert(chain.Root.Cert)
	ca := tekentest.SignerCAOf(t, chain.Intermediate.Cert, chain.Intermediate.Key, chain.Root.Cert, chain.Intermediate.Cert)
	siti := ca.NewOfficial(t, "Siti Rahmawati", "198703152010012003", "123456", 7101, func(c *x509.Certificate) {
		c.OCSPServer, c.CRLDistributionPoints = []string{chain.IntermediateOCSP.URL}, []string{chain.IntermediateCRL}
	})
	chain.IntermediateOCSP.Add(siti.Cert)

	guarded := chain.StartTSA(t, func(r *http.Request) bool {
		user, pass, ok := r.BasicAuth()
		return ok && user == "pemprov-sultra" && pass == "rahasia-tsa"
	})
	down := closedURL(t)

	dir := t.TempDir()
	password := filepath.Join(dir, "tsa.password")
	rootPEM := filepath.Join(dir, "tsa-root.pem")
	if err := os.WriteFile(password, []byte("rahasia-tsa\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(rootPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: chain.Root.Cert.Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	tm := tekentest.Start(t, ca, func(c *daemon.Config) {
		c.Signing.Level = api.LevelBLTA
		c.TSA.Authorities = []daemon.TSAAuthorityConfig{
			{URL: down},
			{URL: guarded.URL, Username: "pemprov-sultra", PasswordFile: password},
		}
		c.TSA.CAFiles = []string{rootPEM}
		c.Revocation.Check = daemon.RevocationRequire
	})
	doc := api.NewDocument("surat", "surat.pdf", "application/pdf",
		demo.LetterPDF("Sekretariat Daerah", "800/77/2026", "Surat Tugas", "Ditugaskan ke Kolaka."))
	doc.Format = api.FormatPAdES
	job := tm.DispatchDocs(siti, "Surat Tugas", "800/77/2026", doc)

	k := tm.Kiosk()
	if err := siti.Card.Insert(context.Background(), tm.PCSCD.VPCDAddr(0)); err != nil {
		t.Fatal(err)
	}
	k.Await("the letter, its certificate checked", func(v kiosk.View) bool {
		return v.State == kiosk.StateToken && v.CanSign && len(v.Jobs) == 1
	})
	if err := k.Read(job.JobID); err != nil {
		t.Fatal(err)
	}
	if code, out := k.Sign([]string{job.JobID}, "123456"); code != http.StatusOK {
		t.Fatalf("sign: %d %v", code, out)
	}
	var res *api.Result
	select {
	case res = <-tm.Results:
	case <-time.After(2 * time.Minute):
		t.Fatalf("no result\n%s", tm.Logs.Bytes())
	}
	d := res.Documents[0]
	if res.Outcome != api.OutcomeSigned || d.Level != api.LevelBLTA || d.LevelError != "" {
		t.Fatalf("result: %s, level %s, level error %q\n%s", res.Outcome, d.Level, d.LevelError, tm.Logs.Bytes())
	}
	rep, err := pades.Verify(context.Background(), d.Signature, pades.VerifyOptions{Roots: roots})
	if err != nil || !rep.Valid() || rep.Signatures[0].Level != api.LevelBLTA {
		t.Fatalf("pades.Verify: %+v %v", rep, err)
	}
	metrics := scrape(t, tm.MetricsURL+"/metrics")
	downHost := strings.TrimPrefix(down, "http://")
	downHost = downHost[:strings.IndexByte(downHost, '/')]
	for _, want := range []string{
		`teken_signatures_total{format="pades",level="B-LTA"} 1`,
		`teken_tsa_failures_total{tsa="` + downHost + `"} 2`, // the signature timestamp and the document timestamp
		`teken_tsa_request_seconds_count{result="ok",tsa="` + strings.TrimPrefix(strings.SplitN(guarded.URL, "/", 4)[2], "") + `"} 2`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// closedURL is the URL of a port on 127.0.0.1 that nothing listens on.
func closedURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr + "/tsa"
}

func scrape(t *testing.T, url string) string {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return string(b)
}
