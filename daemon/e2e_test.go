package daemon_test

import (
	"bytes"
	"context"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/daemon"
	"github.com/tekenid/teken/daemon/kiosk"
	"github.com/tekenid/teken/internal/tekentest"
	"github.com/tekenid/teken/internal/testenv"
	"github.com/tekenid/teken/queue"
)

// sentinelPIN is searched for everywhere after the flow: it must never leave
// the path page → tekend → token.
const sentinelPIN = "Zq7Kx3Wv"

func TestOfficialSignsRejectsAndResultsReachCentral(t *testing.T) {
	ca := tekentest.NewSignerCA(t)
	tm := tekentest.Start(t, ca)
	siti := ca.NewOfficial(t, "Siti Rahmawati, S.Sos.", "198703152010012003", sentinelPIN, 1001)
	budi := ca.NewOfficial(t, "Budi Santoso", "197501012000031001", "12345678", 1002)

	j1 := tm.Dispatch(siti, "Undangan Rapat Koordinasi Anggaran 2027", "005/123/SETDA/XI/2026")
	j2 := tm.Dispatch(siti, "Nota Dinas Penyesuaian Jadwal Pelayanan", "800/456/BKD/XI/2026")
	j3 := tm.Dispatch(siti, "Surat Edaran Libur Nasional", "003/789/SETDA/XI/2026")
	jb := tm.Dispatch(budi, "Disposisi untuk Kepala Bidang", "090/111/SETDA/XI/2026")
	dup := *j1
	ctx := context.Background()
	if err := tm.Central.Publish(ctx, &dup); err != nil {
		t.Fatal(err)
	}
	tm.AwaitReceipt(j1.JobID, api.ReceiptDuplicate)

	k := tm.Kiosk()
	k.Await("idle", func(v kiosk.View) bool { return v.State == kiosk.StateIdle })
	if err := siti.Card.Insert(ctx, tm.PCSCD.VPCDAddr(0)); err != nil {
		t.Fatal(err)
	}
	v := k.Await("Siti's three letters", func(v kiosk.View) bool {
		return v.State == kiosk.StateToken && v.CanSign && len(v.Jobs) == 3
	})
	if v.Signer.Name != siti.Name || v.Signer.NIP != "198703152010012003" {
		t.Errorf("signer shown as %+v", v.Signer)
	}
	for _, j := range v.Jobs {
		if j.ID == jb.JobID {
			t.Fatal("Budi's letter shown to Siti")
		}
	}

	// The page can open the document, and only Siti's.
	res, err := http.Get(tm.KioskURL + "/api/documents/" + j1.JobID + "/0")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !bytes.Equal(body, j1.Documents[0].Content) {
		t.Fatalf("document view: %d %q", res.StatusCode, body)
	}
	res, _ = http.Get(tm.KioskURL + "/api/documents/" + jb.JobID + "/0")
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound {
		t.Fatalf("Budi's document served to Siti's session: %d", res.StatusCode)
	}
	// Budi's job cannot be signed with Siti's token.
	if code, out := k.Post("/api/sign", map[string]any{"job_ids": []string{jb.JobID}, "pin": sentinelPIN}); code == 200 || tekentest.ErrorCode(out) != kiosk.CodeJobGone {
		t.Fatalf("signing another signer's job: %d %v", code, out)
	}

	// The document served above counts as seen; a letter whose document
	// the page has not opened is refused before the token is asked.
	k.Await("the first letter's document seen", func(v kiosk.View) bool {
		i := slices.IndexFunc(v.Jobs, func(j kiosk.Job) bool { return j.ID == j1.JobID })
		return i >= 0 && v.Jobs[i].Documents[0].Viewed
	})
	code, out := k.Post("/api/sign", map[string]any{"job_ids": []string{j1.JobID, j2.JobID}, "pin": sentinelPIN})
	e, _ := out["error"].(map[string]any)
	if params, _ := e["params"].(map[string]any); code != 409 || tekentest.ErrorCode(out) != kiosk.CodeNotViewed || params["title"] != j2.Title {
		t.Fatalf("signing a letter not seen: %d %v", code, out)
	}
	if got := siti.Card.PINRetries(); got != 3 {
		t.Fatalf("card PIN retries after a letter not seen = %d, want 3", got)
	}

	// A wrong PIN is reported with the tries left, and never retried.
	code, out = k.Sign([]string{j1.JobID, j2.JobID}, "00000000")
	if code != 409 || tekentest.ErrorCode(out) != kiosk.CodeWrongPIN {
		t.Fatalf("wrong PIN: %d %v", code, out)
	}
	if got := siti.Card.PINRetries(); got != 2 {
		t.Fatalf("card PIN retries after one wrong PIN = %d, want 2", got)
	}
	k.Await("tries left 2", func(v kiosk.View) bool { return v.TriesLeft != nil && *v.TriesLeft == 2 })

	code, out = k.Sign([]string{j1.JobID, j2.JobID}, sentinelPIN)
	if code != 200 {
		t.Fatalf("sign: %d %v", code, out)
	}
	k.Await("done with 2 signed", func(v kiosk.View) bool { return v.State == kiosk.StateDone && v.Result != nil && v.Result.Signed == 2 })
	if got := siti.Card.PINRetries(); got != 3 {
		t.Errorf("card PIN retries after a right PIN = %d, want 3", got)
	}

	code, out = k.Post("/api/reject", map[string]any{"job_id": j3.JobID, "reason": "Tanggal salah"})
	if code != 409 && code != 200 {
		t.Fatalf("reject: %d %v", code, out)
	}
	if code == 409 {
		// The done screen must be left first, as the page does.
		k.Post("/api/dismiss", map[string]any{})
		if code, out = k.Post("/api/reject", map[string]any{"job_id": j3.JobID, "reason": "Tanggal salah"}); code != 200 {
			t.Fatalf("reject: %d %v", code, out)
		}
	}

	got := map[string]*api.Result{}
	for len(got) < 3 {
		select {
		case r := <-tm.Results:
			got[r.JobID] = r
		case <-time.After(30 * time.Second):
			t.Fatalf("results so far %v\n%s", got, tm.Logs.Bytes())
		}
	}
	for _, j := range []*api.Job{j1, j2} {
		r := got[j.JobID]
		if r == nil || r.Outcome != api.OutcomeSigned || len(r.Documents) != 1 {
			t.Fatalf("result for %s: %+v", j.JobID, r)
		}
		verifyWithOpenSSL(t, ca, r.Documents[0].Signature, j.Documents[0].Content)
	}
	if r := got[j3.JobID]; r == nil || r.Outcome != api.OutcomeRejected || r.Detail != "Tanggal salah" {
		t.Fatalf("rejection result: %+v", r)
	}

	siti.Card.Remove()
	k.Await("idle after removal", func(v kiosk.View) bool { return v.State == kiosk.StateIdle })
	if err := budi.Card.Insert(ctx, tm.PCSCD.VPCDAddr(1)); err != nil {
		t.Fatal(err)
	}
	v = k.Await("Budi's letter", func(v kiosk.View) bool { return v.State == kiosk.StateToken && len(v.Jobs) >= 1 })
	if len(v.Jobs) != 1 || v.Jobs[0].ID != jb.JobID {
		t.Fatalf("Budi sees %+v", v.Jobs)
	}
	budi.Card.Remove()

	// Every result acknowledged: nothing left undelivered.
	err = testenv.WaitFor(ctx, 20*time.Second, func() error {
		res, err := http.Get(tm.MetricsURL + "/metrics")
		if err != nil {
			return err
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		if !bytes.Contains(b, []byte(`teken_jobs_completed_total{outcome="signed"} 2`)) {
			return fmt.Errorf("metrics: %s", b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	metricsBody := get(t, tm.MetricsURL+"/metrics")
	tm.Stop()

	// The audit log tells who decided what, and its chain holds.
	store, err := queue.OpenReadOnly(daemon.StorePath(tm.DataDir), queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.VerifyAudit(ctx); err != nil {
		t.Errorf("audit chain: %v", err)
	}
	var audit bytes.Buffer
	if _, err := store.ExportAudit(ctx, &audit, 0); err != nil {
		t.Fatal(err)
	}
	store.Close(ctx)
	for _, want := range []string{`"event":"pin.wrong"`, `"signer":"` + siti.Hash + `"`, `"reason":"rejected_by_signer: Tanggal salah"`} {
		if !bytes.Contains(audit.Bytes(), []byte(want)) {
			t.Errorf("audit log lacks %s:\n%s", want, audit.Bytes())
		}
	}

	// The sentinel PIN is nowhere: logs, store, broker traffic, metrics.
	db, err := os.ReadFile(daemon.StorePath(tm.DataDir))
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"logs": tm.Logs.Bytes(), "store": db, "broker": tm.Wire.Bytes(), "metrics": metricsBody} {
		if len(b) == 0 {
			t.Errorf("%s: nothing captured to search", name)
		}
		if bytes.Contains(b, []byte(sentinelPIN)) {
			t.Errorf("the PIN appears in the %s", name)
		}
	}
}

func TestTokenRemovedMidBatchKeepsWhatWasSigned(t *testing.T) {
	tm := tekentest.Start(t, nil)
	ca := tekentest.NewSignerCA(t)
	siti := ca.NewOfficial(t, "Siti Rahmawati", "198703152010012003", "123456", 2001)
	var ids []string
	for i := range 3 {
		ids = append(ids, tm.Dispatch(siti, "Surat Keputusan "+string(rune('A'+i)), "800/00"+string(rune('1'+i))).JobID)
	}
	slices.Sort(ids)
	k := tm.Kiosk()
	ctx := context.Background()
	if err := siti.Card.Insert(ctx, tm.PCSCD.VPCDAddr(0)); err != nil {
		t.Fatal(err)
	}
	k.Await("three letters", func(v kiosk.View) bool { return v.CanSign && len(v.Jobs) == 3 })
	// Remove the token on the second signature: one letter signed, the
	// second interrupted.
	siti.RemoveOnSignature(2)
	code, out := k.Sign(ids, "123456")
	if code != 200 && tekentest.ErrorCode(out) != kiosk.CodeTokenRemoved {
		t.Fatalf("sign with removal: %d %v", code, out)
	}
	select {
	case r := <-tm.Results:
		if r.Outcome != api.OutcomeSigned {
			t.Fatalf("result %+v", r)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the letter signed before the removal was not delivered")
	}
	siti.Card.OnCommand(nil)
	k.Await("idle", func(v kiosk.View) bool { return v.State == kiosk.StateIdle || v.State == kiosk.StateDone })
	if err := siti.Card.Insert(ctx, tm.PCSCD.VPCDAddr(0)); err != nil {
		t.Fatal(err)
	}
	v := k.Await("two letters still waiting", func(v kiosk.View) bool { return v.State == kiosk.StateToken && v.CanSign })
	if len(v.Jobs) != 2 {
		t.Fatalf("after the removal %d letters wait, want 2", len(v.Jobs))
	}
}

func verifyWithOpenSSL(t *testing.T, ca *tekentest.SignerCA, sig, doc []byte) {
	t.Helper()
	openssl := testenv.LookPath(t, "openssl")
	dir := t.TempDir()
	sigPath, docPath, caPath := filepath.Join(dir, "sig.p7s"), filepath.Join(dir, "doc.pdf"), filepath.Join(dir, "ca.pem")
	os.WriteFile(sigPath, sig, 0o600)
	os.WriteFile(docPath, doc, 0o600)
	os.WriteFile(caPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw}), 0o600)
	out, err := exec.Command(openssl, "cms", "-verify", "-binary", "-inform", "DER", "-in", sigPath,
		"-content", docPath, "-CAfile", caPath, "-purpose", "any", "-out", os.DevNull).CombinedOutput()
	if err != nil {
		t.Fatalf("openssl cms -verify: %v\n%s", err, out)
	}
}

func get(t *testing.T, url string) []byte {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return b
}

// A second official who taps while the first one's batch is still signing
// is served as soon as that batch is over.
func TestTokenArrivingDuringABatchIsServedAfter(t *testing.T) {
	ca := tekentest.NewSignerCA(t)
	tm := tekentest.Start(t, ca)
	siti := ca.NewOfficial(t, "Siti Rahmawati", "198703152010012003", "123456", 9001)
	budi := ca.NewOfficial(t, "Budi Santoso", "197501012000031001", "123456", 9002)
	js := tm.Dispatch(siti, "Surat Siti", "001/S")
	tm.Dispatch(budi, "Surat Budi", "001/B")
	k := tm.Kiosk()
	ctx := context.Background()
	if err := siti.Card.Insert(ctx, tm.PCSCD.VPCDAddr(0)); err != nil {
		t.Fatal(err)
	}
	k.Await("Siti's letter", func(v kiosk.View) bool { return v.CanSign && len(v.Jobs) == 1 })
	hold, release := siti.HoldSignature()
	signed := k.SignInBackground([]string{js.JobID}, "123456")
	<-hold
	if err := budi.Card.Insert(ctx, tm.PCSCD.VPCDAddr(1)); err != nil {
		t.Fatal(err)
	}
	siti.Card.Remove()
	release()
	if code := <-signed; code != 200 && code != 409 {
		t.Fatalf("Siti's batch: %d", code)
	}
	v := k.Await("Budi's letter", func(v kiosk.View) bool {
		return v.State == kiosk.StateToken && v.Signer != nil && v.Signer.Name == "Budi Santoso"
	})
	if len(v.Jobs) != 1 || v.Jobs[0].Title != "Surat Budi" {
		t.Fatalf("Budi sees %+v", v.Jobs)
	}
}
