package daemon_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/daemon/kiosk"
	"github.com/tekenid/teken/internal/tekentest"
	"github.com/tekenid/teken/internal/testenv"
)

// A letter whose time is up leaves the official's list and its expired
// Result reaches the central side right when the store's sweeper expires
// it — at its expiry, not at the next sweep period (15 s) or outbox tick
// (30 s) — and teken_jobs_completed_total{outcome="expired"} counts it.
func TestExpiredLetterLeavesAtOnce(t *testing.T) {
	ca := tekentest.NewSignerCA(t)
	tm := tekentest.Start(t, ca)
	siti := ca.NewOfficial(t, "Siti Rahmawati", "198703152010012003", "123456", 6101)
	stays := tm.Dispatch(siti, "Surat Tetap", "002/1")
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Second)
	short := &api.Job{V: api.Version, JobID: api.NewJobID(), Terminal: tm.ID, IssuedAt: now, ExpiresAt: now.Add(4 * time.Second),
		Signer: api.Signatory{CertSHA256: siti.Hash, Name: siti.Name}, Title: "Surat Singkat", Number: "002/2", Sender: "Setda",
		Documents: []api.Document{api.NewDocument("surat", "surat.txt", "text/plain", []byte("isi surat singkat"))}}
	if err := tm.Central.Publish(ctx, short); err != nil {
		t.Fatal(err)
	}
	tm.AwaitReceipt(short.JobID, api.ReceiptStored)

	k := tm.Kiosk()
	if err := siti.Card.Insert(ctx, tm.PCSCD.VPCDAddr(0)); err != nil {
		t.Fatal(err)
	}
	ids := func(v kiosk.View) []string {
		var out []string
		for _, j := range v.Jobs {
			out = append(out, j.ID)
		}
		return out
	}
	k.Await("both letters", func(v kiosk.View) bool {
		return slices.Contains(ids(v), short.JobID) && slices.Contains(ids(v), stays.JobID)
	})
	// Nothing but the expiry changes the page from here on: no tap, no
	// new job.
	k.Await("the short letter gone", func(v kiosk.View) bool {
		return v.Signer != nil && slices.Equal(ids(v), []string{stays.JobID})
	})
	// Milliseconds in practice; the bound is only to tell the sweeper's
	// timer from its 15 s period.
	if late := time.Since(short.ExpiresAt); late < 0 || late > 5*time.Second {
		t.Fatalf("the letter left the page %s after its expiry, want right after it", late)
	}
	select {
	case r := <-tm.Results:
		if r.JobID != short.JobID || r.Outcome != api.OutcomeExpired || r.Reason != api.ReasonExpired {
			t.Fatalf("result %+v, want the short letter expired", r)
		}
		t.Logf("Result out %s after the expiry", r.CompletedAt.Sub(short.ExpiresAt))
	case <-time.After(10 * time.Second):
		t.Fatal("no expired Result within 10s of the letter leaving the page")
	}
	err := testenv.WaitFor(ctx, 10*time.Second, func() error {
		if m := get(t, tm.MetricsURL+"/metrics"); !bytes.Contains(m, []byte(`teken_jobs_completed_total{outcome="expired"} 1`+"\n")) {
			return errors.New("expiry not counted")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
