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
	"github.com/tekenid/teken/internal/testenv"
)

// sentinelPIN is searched for everywhere after the flow: it must never leave
// the path page → tekend → token.
const sentinelPIN = "Zq7Kx3Wv"

func TestOfficialSignsRejectsAndResultsReachCentral(t *testing.T) {
	ca := newSignerCA(t)
	tm := startTerminal(t, ca)
	siti := ca.newOfficial(t, "Siti Rahmawati, S.Sos.", "198703152010012003", sentinelPIN, 1001)
	budi := ca.newOfficial(t, "Budi Santoso", "197501012000031001", "12345678", 1002)

	j1 := tm.dispatch(siti, "Undangan Rapat Koordinasi Anggaran 2027", "005/123/SETDA/XI/2026")
	j2 := tm.dispatch(siti, "Nota Dinas Penyesuaian Jadwal Pelayanan", "800/456/BKD/XI/2026")
	j3 := tm.dispatch(siti, "Surat Edaran Libur Nasional", "003/789/SETDA/XI/2026")
	jb := tm.dispatch(budi, "Disposisi untuk Kepala Bidang", "090/111/SETDA/XI/2026")
	dup := *j1
	ctx := context.Background()
	if err := tm.central.Publish(ctx, &dup); err != nil {
		t.Fatal(err)
	}
	tm.awaitReceipt(j1.JobID, api.ReceiptDuplicate)

	k := tm.kiosk()
	k.await("idle", func(v kiosk.View) bool { return v.State == kiosk.StateIdle })
	if err := siti.card.Insert(ctx, tm.pcscd.VPCDAddr(0)); err != nil {
		t.Fatal(err)
	}
	v := k.await("Siti's three letters", func(v kiosk.View) bool {
		return v.State == kiosk.StateToken && v.CanSign && len(v.Jobs) == 3
	})
	if v.Signer.Name != siti.name || v.Signer.NIP != "198703152010012003" {
		t.Errorf("signer shown as %+v", v.Signer)
	}
	for _, j := range v.Jobs {
		if j.ID == jb.JobID {
			t.Fatal("Budi's letter shown to Siti")
		}
	}

	// The page can open the document, and only Siti's.
	res, err := http.Get(tm.kioskURL + "/api/documents/" + j1.JobID + "/0")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !bytes.Equal(body, j1.Documents[0].Content) {
		t.Fatalf("document view: %d %q", res.StatusCode, body)
	}
	res, _ = http.Get(tm.kioskURL + "/api/documents/" + jb.JobID + "/0")
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound {
		t.Fatalf("Budi's document served to Siti's session: %d", res.StatusCode)
	}
	// Budi's job cannot be signed with Siti's token.
	if code, out := k.post("/api/sign", map[string]any{"job_ids": []string{jb.JobID}, "pin": sentinelPIN}); code == 200 || errorCode(out) != kiosk.CodeJobGone {
		t.Fatalf("signing another signer's job: %d %v", code, out)
	}

	// A wrong PIN is reported with the tries left, and never retried.
	code, out := k.post("/api/sign", map[string]any{"job_ids": []string{j1.JobID, j2.JobID}, "pin": "00000000"})
	if code != 409 || errorCode(out) != kiosk.CodeWrongPIN {
		t.Fatalf("wrong PIN: %d %v", code, out)
	}
	if got := siti.card.PINRetries(); got != 2 {
		t.Fatalf("card PIN retries after one wrong PIN = %d, want 2", got)
	}
	k.await("tries left 2", func(v kiosk.View) bool { return v.TriesLeft != nil && *v.TriesLeft == 2 })

	code, out = k.post("/api/sign", map[string]any{"job_ids": []string{j1.JobID, j2.JobID}, "pin": sentinelPIN})
	if code != 200 {
		t.Fatalf("sign: %d %v", code, out)
	}
	k.await("done with 2 signed", func(v kiosk.View) bool { return v.State == kiosk.StateDone && v.Result != nil && v.Result.Signed == 2 })
	if got := siti.card.PINRetries(); got != 3 {
		t.Errorf("card PIN retries after a right PIN = %d, want 3", got)
	}

	code, out = k.post("/api/reject", map[string]any{"job_id": j3.JobID, "reason": "Tanggal salah"})
	if code != 409 && code != 200 {
		t.Fatalf("reject: %d %v", code, out)
	}
	if code == 409 {
		// The done screen must be left first, as the page does.
		k.post("/api/dismiss", map[string]any{})
		if code, out = k.post("/api/reject", map[string]any{"job_id": j3.JobID, "reason": "Tanggal salah"}); code != 200 {
			t.Fatalf("reject: %d %v", code, out)
		}
	}

	got := map[string]*api.Result{}
	for len(got) < 3 {
		select {
		case r := <-tm.results:
			got[r.JobID] = r
		case <-time.After(30 * time.Second):
			t.Fatalf("results so far %v\n%s", got, tm.logs.Bytes())
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

	siti.card.Remove()
	k.await("idle after removal", func(v kiosk.View) bool { return v.State == kiosk.StateIdle })
	if err := budi.card.Insert(ctx, tm.pcscd.VPCDAddr(1)); err != nil {
		t.Fatal(err)
	}
	v = k.await("Budi's letter", func(v kiosk.View) bool { return v.State == kiosk.StateToken && len(v.Jobs) >= 1 })
	if len(v.Jobs) != 1 || v.Jobs[0].ID != jb.JobID {
		t.Fatalf("Budi sees %+v", v.Jobs)
	}
	budi.card.Remove()

	// Every result acknowledged: nothing left undelivered.
	err = testenv.WaitFor(ctx, 20*time.Second, func() error {
		res, err := http.Get(tm.metrics + "/metrics")
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
	metricsBody := get(t, tm.metrics+"/metrics")
	tm.stop()

	// The sentinel PIN is nowhere: logs, store, broker traffic, metrics.
	db, err := os.ReadFile(daemon.StorePath(tm.dataDir))
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"logs": tm.logs.Bytes(), "store": db, "broker": tm.wire.Bytes(), "metrics": metricsBody} {
		if len(b) == 0 {
			t.Errorf("%s: nothing captured to search", name)
		}
		if bytes.Contains(b, []byte(sentinelPIN)) {
			t.Errorf("the PIN appears in the %s", name)
		}
	}
}

func TestTokenRemovedMidBatchKeepsWhatWasSigned(t *testing.T) {
	tm := startTerminal(t, nil)
	ca := newSignerCA(t)
	siti := ca.newOfficial(t, "Siti Rahmawati", "198703152010012003", "123456", 2001)
	var ids []string
	for i := range 3 {
		ids = append(ids, tm.dispatch(siti, "Surat Keputusan "+string(rune('A'+i)), "800/00"+string(rune('1'+i))).JobID)
	}
	slices.Sort(ids)
	k := tm.kiosk()
	ctx := context.Background()
	if err := siti.card.Insert(ctx, tm.pcscd.VPCDAddr(0)); err != nil {
		t.Fatal(err)
	}
	k.await("three letters", func(v kiosk.View) bool { return v.CanSign && len(v.Jobs) == 3 })
	// Remove the token on the second GENERAL AUTHENTICATE: one letter
	// signed, the second interrupted.
	signs := 0
	siti.card.OnCommand(func(ins byte) {
		if ins == 0x87 {
			signs++
			if signs == 2 {
				siti.card.Remove()
			}
		}
	})
	code, out := k.post("/api/sign", map[string]any{"job_ids": ids, "pin": "123456"})
	if code != 200 && errorCode(out) != kiosk.CodeTokenRemoved {
		t.Fatalf("sign with removal: %d %v", code, out)
	}
	select {
	case r := <-tm.results:
		if r.Outcome != api.OutcomeSigned {
			t.Fatalf("result %+v", r)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the letter signed before the removal was not delivered")
	}
	siti.card.OnCommand(nil)
	k.await("idle", func(v kiosk.View) bool { return v.State == kiosk.StateIdle || v.State == kiosk.StateDone })
	if err := siti.card.Insert(ctx, tm.pcscd.VPCDAddr(0)); err != nil {
		t.Fatal(err)
	}
	v := k.await("two letters still waiting", func(v kiosk.View) bool { return v.State == kiosk.StateToken && v.CanSign })
	if len(v.Jobs) != 2 {
		t.Fatalf("after the removal %d letters wait, want 2", len(v.Jobs))
	}
}

func verifyWithOpenSSL(t *testing.T, ca *signerCA, sig, doc []byte) {
	t.Helper()
	openssl := testenv.LookPath(t, "openssl")
	dir := t.TempDir()
	sigPath, docPath, caPath := filepath.Join(dir, "sig.p7s"), filepath.Join(dir, "doc.pdf"), filepath.Join(dir, "ca.pem")
	os.WriteFile(sigPath, sig, 0o600)
	os.WriteFile(docPath, doc, 0o600)
	os.WriteFile(caPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw}), 0o600)
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
