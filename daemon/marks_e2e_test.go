package daemon_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/daemon/kiosk"
	"github.com/tekenid/teken/internal/ctl"
	"github.com/tekenid/teken/internal/demo"
	"github.com/tekenid/teken/internal/tekentest"
	"github.com/tekenid/teken/internal/testenv"
)

// A letter through two hands on the Job of v 2: a paraf placed at the
// anchor "^", then the issuing official's ttd with the jabatan at
// "${ttd_sekda}", locking the letter. Both signatures verify; the page
// text shows the paraf's initials and the jabatan; an anchor the letter
// lacks is refused in the receipt.
func TestParafThenTTDThroughTheTerminal(t *testing.T) {
	ca := tekentest.NewSignerCA(t)
	tm := tekentest.Start(t, ca)
	budi := ca.NewOfficial(t, "Drs. La Ode Budiman, M.Si.", "197001012000031001", "123456", 7101)
	siti := ca.NewOfficial(t, "Dr. Siti Rahmawati, M.Si.", "198703152010012003", "123456", 7102)
	letter := demo.LetterPDF("Sekretariat Daerah", "005/123/SETDA/2026", "Undangan Rapat Koordinasi",
		"Demikian undangan ini disampaikan. ^", "Sekretaris Daerah, ${ttd_sekda}")

	pades := func(content []byte, v *api.Visible, certify bool) api.Document {
		d := api.NewDocument("surat", "surat.pdf", "application/pdf", content)
		d.Format, d.Visible, d.Certify = api.FormatPAdES, v, certify
		return d
	}
	job := func(who *tekentest.Official, jabatan string, d api.Document) *api.Job {
		return &api.Job{V: api.VersionMarks, Signer: api.Signatory{CertSHA256: who.Hash, Name: who.Name, Jabatan: jabatan},
			Title: "Undangan Rapat Koordinasi", Number: "005/123/SETDA/2026", Sender: "Sekretariat Daerah", Documents: []api.Document{d}}
	}

	// An anchor the letter lacks: refused before anything is stored.
	tm.DispatchJob(job(budi, "", pades(letter, &api.Visible{Mark: api.MarkParaf, Anchor: &api.Anchor{Text: "#tidak-ada#"}}, false)), api.ReceiptRefused)

	k := tekentest.OpenKiosk(t, tm.KioskURL)
	signAs := func(who *tekentest.Official, j *api.Job) []byte {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := who.Card.Insert(ctx, tm.PCSCD.VPCDAddr(0)); err != nil {
			t.Fatal(err)
		}
		k.Await("the letter", func(v kiosk.View) bool {
			if v.State == kiosk.StateDone {
				k.Post("/api/dismiss", map[string]any{})
				return false
			}
			return v.CanSign && len(v.Jobs) == 1 && v.Jobs[0].ID == j.JobID
		})
		if code, body := k.Sign([]string{j.JobID}, who.PIN); code != 200 {
			t.Fatalf("sign as %s: %d %v", who.Name, code, body)
		}
		var signed []byte
		select {
		case r := <-tm.Results:
			if r.JobID != j.JobID || r.Outcome != api.OutcomeSigned {
				t.Fatalf("result %+v", r)
			}
			signed = r.Documents[0].Signature
		case <-time.After(time.Minute):
			t.Fatal("no result")
		}
		if err := who.Card.Remove(); err != nil {
			t.Fatal(err)
		}
		k.Await("idle", func(v kiosk.View) bool { return v.State == kiosk.StateIdle })
		return signed
	}

	paraf := tm.DispatchJob(job(budi, "", pades(letter, &api.Visible{Mark: api.MarkParaf, Anchor: &api.Anchor{Text: "^", Offset: []float64{10, -8}}}, false)), api.ReceiptStored)
	initialled := signAs(budi, paraf)
	ttd := tm.DispatchJob(job(siti, "Sekretaris Daerah Provinsi Sulawesi Tenggara",
		pades(initialled, &api.Visible{Anchor: &api.Anchor{Text: "${ttd_sekda}", Offset: []float64{0, -90}}}, true)), api.ReceiptStored)
	final := signAs(siti, ttd)

	if !bytes.HasPrefix(final, initialled) || !bytes.Contains(final[len(initialled):], []byte("/FieldMDP")) {
		t.Fatal("the ttd is not an update of the initialled letter locking it")
	}
	roots, err := ctl.LoadRoots(ca.PEMPath)
	if err != nil {
		t.Fatal(err)
	}
	v := ctl.VerifyPDF(context.Background(), final, ctl.Trust{Roots: roots})
	if !v.Valid() || len(v.Signatures) != 2 {
		t.Fatalf("verdict %+v, want two valid signatures", v)
	}
	if pdftotext := testenv.LookPath(t, "pdftotext"); pdftotext != "" {
		path := filepath.Join(t.TempDir(), "final.pdf")
		if err := os.WriteFile(path, final, 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(pdftotext, "-enc", "UTF-8", path, "-").CombinedOutput()
		if err != nil {
			t.Fatalf("pdftotext: %v\n%s", err, out)
		}
		for _, want := range []string{"Paraf", "LOB", "Sekretaris Daerah Provinsi Sulawesi Tenggara", "Dr. Siti Rahmawati"} {
			if !strings.Contains(string(out), want) {
				t.Errorf("the signed letter lacks %q:\n%s", want, out)
			}
		}
	}
}
