package daemon

import (
	"strings"
	"testing"
	"time"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/device"
	"github.com/tekenid/teken/queue"
)

// controlEnvelope signs a Cancel or a ResultAck for job id with the rig's
// dispatcher key.
func (r *flowRig) controlEnvelope(t *testing.T, cancel bool, id string) []byte {
	t.Helper()
	now := r.clock.now().UTC()
	var env []byte
	var err error
	if cancel {
		env, err = r.jobs.SignCancel(&api.Cancel{V: 1, JobID: id, Terminal: "kendari-setda-01", IssuedAt: now, ExpiresAt: now.Add(time.Hour), Reason: "ditarik"})
	} else {
		env, err = r.jobs.SignResultAck(&api.ResultAck{V: 1, JobID: id, Terminal: "kendari-setda-01", IssuedAt: now, ExpiresAt: now.Add(time.Hour)})
	}
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// Every Cancel and ResultAck that is refused or changes nothing is
// answered with a receipt naming what it answers and why; one that acts
// is answered by what it did (a cancelled Result, silence).
func TestControlMessagesAreAnswered(t *testing.T) {
	r := newFlowRig(t, device.PINPolicyOnce)
	signed := r.storeJob(t, r.signer, 1)
	waiting := r.storeJob(t, r.signer, 1)
	r.flow.presence(r.ctx, device.Event{Kind: device.Arrived, Reader: "Reader 0"})
	r.read(t, signed)
	if err := r.flow.Sign(r.ctx, []string{signed}, []byte("123456"), false); err != nil {
		t.Fatal(err)
	}
	unknown := api.NewJobID()
	other, err := api.GenerateKey(api.AlgEdDSA)
	if err != nil {
		t.Fatal(err)
	}
	forger, err := api.NewSigner(other)
	if err != nil {
		t.Fatal(err)
	}
	now := r.clock.now().UTC()
	forged, err := forger.SignCancel(&api.Cancel{V: 1, JobID: waiting, Terminal: "kendari-setda-01", IssuedAt: now, ExpiresAt: now.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		env    []byte
		for_   api.ReceiptFor
		status api.ReceiptStatus
		reason api.ReasonCode
		job    string
	}{
		{"cancel of an unknown job", r.controlEnvelope(t, true, unknown), api.ForCancel, api.ReceiptRefused, api.ReasonUnknownJob, unknown},
		{"cancel of a signed job", r.controlEnvelope(t, true, signed), api.ForCancel, api.ReceiptRefused, api.ReasonTooLate, signed},
		{"forged cancel", forged, api.ForCancel, api.ReceiptRefused, api.ReasonUnknownKID, waiting},
		{"cancel that works", r.controlEnvelope(t, true, waiting), "", "", "", ""},
		{"the same cancel again", r.controlEnvelope(t, true, waiting), api.ForCancel, api.ReceiptDuplicate, "", waiting},
		{"ack of an unknown job", r.controlEnvelope(t, false, unknown), api.ForResultAck, api.ReceiptRefused, api.ReasonUnknownJob, unknown},
		{"ack that works", r.controlEnvelope(t, false, signed), "", "", "", ""},
		{"the same ack again", r.controlEnvelope(t, false, signed), api.ForResultAck, api.ReceiptDuplicate, "", signed},
	} {
		a, err := r.intake.HandleControl(r.ctx, c.env)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if c.for_ == "" {
			if a.Receipt != nil {
				t.Errorf("%s: receipt %+v, want none", c.name, a.Receipt)
			}
			continue
		}
		rc := a.Receipt
		if rc == nil || rc.For != c.for_ || rc.Status != c.status || rc.Reason != c.reason || rc.JobID != c.job {
			t.Errorf("%s: receipt %+v, want for %s status %s reason %s job %s", c.name, rc, c.for_, c.status, c.reason, c.job)
			continue
		}
		rc.V, rc.Terminal = 1, "kendari-setda-01"
		if _, err := api.Encode(rc); err != nil {
			t.Errorf("%s: the receipt does not pass validation: %v", c.name, err)
		}
	}
	j, err := r.store.Get(r.ctx, waiting)
	if err != nil || j.Outcome != queue.Cancelled {
		t.Errorf("the waiting job: %+v %v, want cancelled", j, err)
	}
}

// A ResultAck for a job that has no result yet is refused as no_result.
func TestResultAckBeforeResult(t *testing.T) {
	r := newFlowRig(t, device.PINPolicyOnce)
	id := r.storeJob(t, r.signer, 1)
	a, err := r.intake.HandleControl(r.ctx, r.controlEnvelope(t, false, id))
	if err != nil || a.Receipt == nil || a.Receipt.Reason != api.ReasonNoResult {
		t.Fatalf("ack before result: %+v %v", a.Receipt, err)
	}
}

// A SyncRequest is verified and handed to the transport; the re-send lists
// every held job's receipt with its stored envelope's hash.
func TestSyncRequestAndResend(t *testing.T) {
	r := newFlowRig(t, device.PINPolicyOnce)
	id, env := r.envelope(t, r.signer, 1)
	if rc, err := r.intake.HandleJob(r.ctx, env); err != nil || rc.Status != api.ReceiptStored {
		t.Fatalf("store: %+v %v", rc, err)
	}
	now := r.clock.now().UTC()
	req, err := r.jobs.SignSyncRequest(&api.SyncRequest{V: 1, Terminal: "kendari-setda-01", RequestID: api.NewJobID(), IssuedAt: now, ExpiresAt: now.Add(10 * time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	a, err := r.intake.HandleControl(r.ctx, req)
	if err != nil || a.SyncRequest == "" || a.Receipt != nil {
		t.Fatalf("sync request: %+v %v", a, err)
	}
	stale, err := r.jobs.SignSyncRequest(&api.SyncRequest{V: 1, Terminal: "kendari-setda-01", RequestID: api.NewJobID(), IssuedAt: now.Add(-2 * time.Hour), ExpiresAt: now.Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	a, err = r.intake.HandleControl(r.ctx, stale)
	if err != nil || a.SyncRequest != "" || a.Receipt == nil || a.Receipt.For != api.ForSyncRequest || a.Receipt.Reason != api.ReasonExpired {
		t.Fatalf("expired sync request: %+v %v", a, err)
	}
	receipts, err := r.intake.Resend(r.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(receipts) != 1 || receipts[0].JobID != id || receipts[0].EnvelopeSHA256 != api.EnvelopeSHA256(env) || receipts[0].For != api.ForJob {
		t.Fatalf("re-sent receipts %+v", receipts)
	}
}

// A known job id with another payload is refused as conflict, naming the
// envelope the terminal keeps; the same payload signed again is a
// duplicate.
func TestConflictingJobID(t *testing.T) {
	r := newFlowRig(t, device.PINPolicyOnce)
	now := r.clock.now().UTC().Truncate(time.Second)
	j := &api.Job{V: api.Version, JobID: api.NewJobID(), Terminal: "kendari-setda-01", IssuedAt: now, ExpiresAt: now.Add(24 * time.Hour),
		Signer: api.Signatory{CertSHA256: r.signer}, Title: "Surat", Number: "1", Sender: "Setda",
		Documents: []api.Document{api.NewDocument("surat", "surat.txt", "text/plain", []byte("isi surat"))}}
	first, err := r.jobs.SignJob(j)
	if err != nil {
		t.Fatal(err)
	}
	if rc, err := r.intake.HandleJob(r.ctx, first); err != nil || rc.Status != api.ReceiptStored {
		t.Fatalf("first: %+v %v", rc, err)
	}
	again, err := r.jobs.SignJob(j) // ES256: other signature bytes
	if err != nil {
		t.Fatal(err)
	}
	if rc, err := r.intake.HandleJob(r.ctx, again); err != nil || rc.Status != api.ReceiptDuplicate {
		t.Fatalf("re-signed: %+v %v, want duplicate", rc, err)
	}
	j.Title = "Surat lain"
	other, err := r.jobs.SignJob(j)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := r.intake.HandleJob(r.ctx, other)
	if err != nil || rc.Status != api.ReceiptRefused || rc.Reason != api.ReasonConflict || rc.StoredEnvelopeSHA256 != api.EnvelopeSHA256(first) {
		t.Fatalf("other payload: %+v %v, want conflict naming %s", rc, err, api.EnvelopeSHA256(first))
	}
	if !r.audited(t, eventConflict) {
		t.Error("the conflict is not in the audit log")
	}
	stored, err := r.store.Get(r.ctx, j.JobID)
	if err != nil || api.EnvelopeSHA256(stored.Envelope) != api.EnvelopeSHA256(first) {
		t.Errorf("the stored envelope changed: %v", err)
	}
}

// A visible block the PDF has no room for is refused in the receipt and
// nothing is stored.
func TestPlacementRefusedInReceipt(t *testing.T) {
	for _, c := range []struct {
		name string
		vis  api.Visible
		want string
	}{
		{"page past the last", api.Visible{Page: 9}, "page 9 of 1"},
		{"rect off the page", api.Visible{Page: 1, Rect: []float64{500, 700, 900, 800}}, "lies outside page 1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newFlowRig(t, device.PINPolicyOnce)
			now := r.clock.now().UTC().Truncate(time.Second)
			d := api.NewDocument("surat", "surat.pdf", "application/pdf", xrefStreamPDFWith("", "", ""))
			d.Format = api.FormatPAdES
			vis := c.vis
			d.Visible = &vis
			j := &api.Job{V: api.Version, JobID: api.NewJobID(), Terminal: "kendari-setda-01", IssuedAt: now, ExpiresAt: now.Add(time.Hour),
				Signer: api.Signatory{CertSHA256: r.signer}, Title: "Surat", Number: "1", Sender: "Setda", Documents: []api.Document{d}}
			env, err := r.jobs.SignJob(j)
			if err != nil {
				t.Fatal(err)
			}
			rc, err := r.intake.HandleJob(r.ctx, env)
			if err != nil || rc.Status != api.ReceiptRefused || rc.Reason != api.ReasonBadDocument || !strings.Contains(rc.Detail, c.want) {
				t.Fatalf("receipt %+v %v, want bad_document naming %q", rc, err, c.want)
			}
			if _, err := r.store.Get(r.ctx, j.JobID); err == nil {
				t.Error("the refused job was stored")
			}
		})
	}
}

// A ResultAcks marks every result it names delivered, in one go, and is
// answered by no receipt whatever it changed; one that fails verification
// gets one refused receipt for result_acks.
func TestResultAcksMarkEveryResultNamed(t *testing.T) {
	r := newFlowRig(t, device.PINPolicyOnce)
	first := r.storeJob(t, r.signer, 1)
	second := r.storeJob(t, r.signer, 1)
	waiting := r.storeJob(t, r.signer, 1)
	r.flow.presence(r.ctx, device.Event{Kind: device.Arrived, Reader: "Reader 0"})
	r.read(t, first)
	r.read(t, second)
	if err := r.flow.Sign(r.ctx, []string{first, second}, []byte("123456"), false); err != nil {
		t.Fatal(err)
	}
	if res, err := r.store.Undelivered(r.ctx, 0, 0); err != nil || len(res) != 2 {
		t.Fatalf("outbox %d results, %v; want 2", len(res), err)
	}
	now := r.clock.now().UTC()
	batch := func(s *api.Signer, terminal string, ids ...string) []byte {
		t.Helper()
		env, err := s.SignResultAcks(&api.ResultAcks{V: 1, Terminal: terminal, JobIDs: ids, IssuedAt: now, ExpiresAt: now.Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		return env
	}
	other, err := api.GenerateKey(api.AlgEdDSA)
	if err != nil {
		t.Fatal(err)
	}
	forger, err := api.NewSigner(other)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		env    []byte
		reason api.ReasonCode // "": no receipt
	}{
		{"forged", batch(forger, "kendari-setda-01", first, second), api.ReasonUnknownKID},
		{"for another terminal", batch(r.jobs, "kendari-setda-02", first, second), api.ReasonWrongTerminal},
		{"acks of two results, a waiting job and an unknown one", batch(r.jobs, "kendari-setda-01", first, waiting, second, api.NewJobID()), ""},
		{"the same again", batch(r.jobs, "kendari-setda-01", first, second), ""},
	} {
		a, err := r.intake.HandleControl(r.ctx, c.env)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if c.reason == "" {
			if a.Receipt != nil {
				t.Errorf("%s: receipt %+v, want none", c.name, a.Receipt)
			}
			continue
		}
		rc := a.Receipt
		if rc == nil || rc.For != api.ForResultAcks || rc.Status != api.ReceiptRefused || rc.Reason != c.reason || rc.JobID != "" {
			t.Errorf("%s: receipt %+v, want a refusal for result_acks, reason %s, no job", c.name, rc, c.reason)
			continue
		}
		rc.V, rc.Terminal = 1, "kendari-setda-01"
		if _, err := api.Encode(rc); err != nil {
			t.Errorf("%s: the receipt does not pass validation: %v", c.name, err)
		}
		if res, err := r.store.Undelivered(r.ctx, 0, 0); err != nil || len(res) != 2 {
			t.Errorf("%s: outbox %d results, %v; want both still there", c.name, len(res), err)
		}
	}
	if res, err := r.store.Undelivered(r.ctx, 0, 0); err != nil || len(res) != 0 {
		t.Errorf("outbox %d results, %v; want none after the batch", len(res), err)
	}
	if j, err := r.store.Get(r.ctx, waiting); err != nil || j.State != queue.Ready {
		t.Errorf("the waiting job: %+v %v, want it still ready", j, err)
	}
}
