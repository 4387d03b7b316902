package central_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/daemon/kiosk"
	"github.com/tekenid/teken/internal/tekentest"
	"github.com/tekenid/teken/internal/testenv"
)

const python = "/usr/bin/python3"

// TestCentralPy runs the reference central system, central.py, against a
// real tekend, Mosquitto and software token:
//
//  1. jobs signed with a P-256 key and with an Ed25519 key, one per format
//     (cms, raw, pades), are stored by the terminal, signed at the kiosk,
//     and every result reaches central.py, is verified (openssl for CMS and
//     the PDF's CMS), stored in its ledger and acknowledged: the terminal's
//     outbox empties;
//  2. a job the broker "lost" (kept in the ledger, never published) comes
//     out again when the terminal's Sync, asked for with a SyncRequest,
//     does not list it;
//  3. a job published while central.py is down reaches it through its
//     persistent session; results taken without a ResultAck (--no-ack),
//     then lost with the ledger (a backup restored), all come back to
//     `recover` — a new client id, a clean session, a SyncRequest — and
//     are acknowledged, and the outbox empties again;
//  4. a SyncRequest signed with a key the terminal does not trust is
//     answered with a receipt for the sync_request, which ends recover at
//     once with its reason.
func TestCentralPy(t *testing.T) {
	needPython(t)
	openssl := testenv.LookPath(t, "openssl")
	ca := tekentest.NewSignerCA(t)
	rig := tekentest.StartRig(t, ca)
	official := ca.NewOfficial(t, "Drs. La Ode Budiman, M.Si.", "197001012000031001", "123456", 4242)

	dir := t.TempDir()
	ledger := filepath.Join(dir, "ledger.sqlite")
	certPEM := filepath.Join(dir, "signer.pem")
	write(t, certPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: official.Cert.Raw}))
	// Every document is of a type the kiosk shows: a .csv, say, would be
	// refused with unsupported_media_type.
	docs := map[string]string{
		"cms":   filepath.Join(dir, "undangan-rapat.txt"),
		"raw":   filepath.Join(dir, "daftar-hadir.txt"),
		"pades": filepath.Join("..", "..", "api", "testdata", "vectors", "documents", "surat-edaran.pdf"),
	}
	write(t, docs["cms"], []byte("Undangan rapat koordinasi, Senin 5 Januari 2026, pukul 09.00 WITA.\n"))
	write(t, docs["raw"], []byte("no;nama;jabatan\n1;Drs. La Ode Budiman, M.Si.;Sekretaris Daerah\n"))
	py := &centralPy{t: t, common: []string{"--broker", rig.Broker.URL, "--ledger", ledger, "--client-id", "central-py",
		"--signer-ca", ca.PEMPath, "--openssl", openssl, "--key", rig.KeyFiles[api.AlgES256]}}
	dispatch := func(alg, format string, extra ...string) string {
		t.Helper()
		args := append([]string{"--key", rig.KeyFiles[alg], "dispatch", "--terminal", rig.ID, "--signer-cert", certPEM,
			"--title", "Surat " + format + " " + alg, "--number", "005/" + format + "/" + alg, "--document", format + ":" + docs[format],
			"--visible-url", "https://tte.example.go.id/v/uji"}, extra...)
		ev := find(py.once(args...), "dispatched")
		if ev == nil || ev["alg"] != alg {
			t.Fatalf("dispatch: %v", ev)
		}
		return ev["job_id"].(string)
	}
	undelivered := func(want float64) {
		t.Helper()
		err := testenv.WaitFor(context.Background(), 60*time.Second, func() error {
			if n, err := rig.Gauge("teken_results_undelivered"); err != nil || n != want {
				return fmt.Errorf("teken_results_undelivered %v (%v), want %v", n, err, want)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}

	// 1. Both key types, every format.
	run := py.start("run")
	run.await("subscribed", func(e event) bool { return e["event"] == "subscribed" })
	var first []string
	for _, alg := range []string{api.AlgES256, api.AlgEdDSA} {
		for _, format := range []string{"cms", "raw", "pades"} {
			first = append(first, dispatch(alg, format))
		}
	}
	run.awaitJobs("stored receipts", first, func(e event) bool { return e["event"] == "receipt" && e["status"] == "stored" })
	k := rig.Kiosk()
	ctx := context.Background()
	if err := official.Card.Insert(ctx, rig.PCSCD.VPCDAddr(0)); err != nil {
		t.Fatal(err)
	}
	sign(t, k, official.PIN, first)
	results := run.awaitJobs("verified results", first, func(e event) bool {
		return e["event"] == "result" && e["new"] == true && e["outcome"] == "signed" && e["verified"] == true
	})
	run.awaitJobs("result acks", first, func(e event) bool { return e["event"] == "result_ack_sent" })
	for i, id := range first {
		if f := results[id]["formats"]; !slices.Equal(anyStrings(f), []string{[]string{"cms", "raw", "pades"}[i%3]}) {
			t.Errorf("job %s: result formats %v", id, f)
		}
	}
	undelivered(0)

	// 2. A job the broker lost comes out again on the answer to a SyncRequest.
	lost := dispatch(api.AlgES256, "cms", "--no-publish")
	py.once("request-sync", "--terminal", rig.ID)
	run.await("the answer to the SyncRequest", func(e event) bool { return e["event"] == "sync" && e["trigger"] == "request" })
	// The answer re-sends it, unless the periodic Sync came first and did.
	run.await("the sync that re-sends the lost job", func(e event) bool {
		return e["event"] == "sync" && slices.Contains(anyStrings(e["resent"]), lost)
	})
	run.awaitJobs("the lost job's receipt", []string{lost}, func(e event) bool { return e["event"] == "receipt" && e["status"] == "stored" })
	run.stop()

	// 3. Results never acknowledged, then forgotten, come back to recover.
	late := []string{dispatch(api.AlgEdDSA, "pades"), dispatch(api.AlgES256, "raw")}
	backup := filepath.Join(dir, "ledger-backup.sqlite")
	copyFile(t, ledger, backup)
	noAck := py.start("run", "--no-ack")
	noAck.awaitJobs("receipts queued in the persistent session", late, func(e event) bool { return e["event"] == "receipt" && e["status"] == "stored" })
	k.Post("/api/dismiss", map[string]any{})
	phase3 := append([]string{lost}, late...)
	sign(t, k, official.PIN, phase3)
	noAck.awaitJobs("results taken without an ack", phase3, func(e event) bool { return e["event"] == "result" && e["new"] == true && e["verified"] == true })
	undelivered(3)
	noAck.stop()
	if acks := noAck.matching(func(e event) bool { return e["event"] == "result_ack_sent" }); len(acks) != 0 {
		t.Fatalf("--no-ack sent acks: %v", acks)
	}
	copyFile(t, backup, ledger) // the ledger restored: those results are gone

	evs := py.once("recover", "--terminal", rig.ID, "--new-client-id", "central-py-recovered")
	last := evs[len(evs)-1]
	if last["event"] != "recovered" {
		t.Fatalf("recover: %v", evs)
	}
	got := last["terminals"].(map[string]any)[rig.ID].(map[string]any)
	if want := slices.Sorted(slices.Values(phase3)); !slices.Equal(slices.Sorted(slices.Values(anyStrings(got["results_undelivered"]))), want) ||
		!slices.Equal(anyStrings(got["acked"]), want) {
		t.Errorf("recovered %v, want every result not acked: %v", got, want)
	}
	for _, id := range phase3 {
		if !slices.ContainsFunc(evs, func(e event) bool {
			return e["event"] == "result" && e["job_id"] == id && e["new"] == true && e["verified"] == true
		}) {
			t.Errorf("recover did not store and verify %s:\n%v", id, evs)
		}
	}
	undelivered(0)

	// A SyncRequest the terminal refuses — signed with a key it does not
	// trust — ends recover at once, with the reason of the receipt.
	stranger, err := api.GenerateKey(api.AlgEdDSA)
	if err != nil {
		t.Fatal(err)
	}
	strangerPEM, _ := api.MarshalPrivateKeyPEM(stranger)
	write(t, filepath.Join(dir, "stranger.pem"), strangerPEM)
	evs, err = py.try("--key", filepath.Join(dir, "stranger.pem"), "recover", "--terminal", rig.ID)
	if last := find(evs, "recover_incomplete"); err == nil || last == nil ||
		last["terminals"].(map[string]any)[rig.ID].(map[string]any)["refused"] != string(api.ReasonUnknownKID) {
		t.Errorf("recover with an untrusted key: %v %v", err, evs)
	}

	// The ledger holds every job with its verified result.
	var report struct {
		Jobs []struct {
			JobID, State, Outcome, Kid string
			Verified                   *bool
		} `json:"jobs"`
		Orphans []any `json:"results_without_job"`
	}
	if err := json.Unmarshal(py.output("ledger"), &report); err != nil {
		t.Fatal(err)
	}
	if len(report.Jobs) != len(first)+len(phase3) || len(report.Orphans) != 0 {
		t.Fatalf("ledger: %+v", report)
	}
	for _, j := range report.Jobs {
		if j.State != "done" || j.Outcome != "signed" || j.Verified == nil || !*j.Verified {
			t.Errorf("ledger job %+v", j)
		}
	}
}

// needPython skips, or fails in CI, without Debian's python3 and the two
// packages central.py uses.
func needPython(t *testing.T) {
	t.Helper()
	if out, err := exec.Command(python, "-c", "import paho.mqtt.client, cryptography.x509").CombinedOutput(); err != nil {
		testenv.Unavailable(t, "%s with python3-paho-mqtt and python3-cryptography (apt-get install python3-paho-mqtt python3-cryptography): %v\n%s", python, err, out)
	}
}

// sign signs the given jobs at the kiosk, as the official does, once the
// token's letters are exactly these.
func sign(t *testing.T, k *tekentest.Kiosk, pin string, ids []string) {
	t.Helper()
	k.Await("the letters to sign", func(v kiosk.View) bool {
		if v.State != kiosk.StateToken || !v.CanSign || len(v.Jobs) != len(ids) {
			return false
		}
		for _, j := range v.Jobs {
			if !slices.Contains(ids, j.ID) {
				return false
			}
		}
		return true
	})
	if code, out := k.Sign(ids, pin); code != 200 {
		t.Fatalf("sign: %d %v", code, out)
	}
	k.Await("the batch signed", func(v kiosk.View) bool {
		return v.State == kiosk.StateDone && v.Result != nil && v.Result.Signed == len(ids)
	})
}

type event map[string]any

// find returns the first event of a name, or nil.
func find(evs []event, name string) event {
	if i := slices.IndexFunc(evs, func(e event) bool { return e["event"] == name }); i >= 0 {
		return evs[i]
	}
	return nil
}

func anyStrings(v any) []string {
	l, _ := v.([]any)
	out := make([]string, 0, len(l))
	for _, x := range l {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

// centralPy runs central.py with the options every command shares.
type centralPy struct {
	t      *testing.T
	common []string
}

func (c *centralPy) command(args ...string) *exec.Cmd {
	return exec.Command(python, append(append([]string{"central.py"}, c.common...), args...)...)
}

// output runs a command to its end and returns its stdout.
func (c *centralPy) output(args ...string) []byte {
	c.t.Helper()
	cmd := c.command(args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		c.t.Fatalf("central.py %v: %v\n%s\n%s", args, err, out, stderr.Bytes())
	}
	return out
}

// once runs a command to its end and returns its events.
func (c *centralPy) once(args ...string) []event {
	c.t.Helper()
	evs, err := c.try(args...)
	if err != nil {
		c.t.Fatalf("central.py %v: %v\n%v", args, err, evs)
	}
	return evs
}

// try runs a command to its end and returns its events and how it exited.
func (c *centralPy) try(args ...string) ([]event, error) {
	c.t.Helper()
	cmd := c.command(args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		err = fmt.Errorf("%w\n%s", err, stderr.Bytes())
	}
	var evs []event
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			c.t.Fatalf("central.py %v printed %q: %v", args, sc.Bytes(), err)
		}
		evs = append(evs, e)
	}
	if len(evs) == 0 && err == nil {
		err = fmt.Errorf("printed no event")
	}
	return evs, err
}

// process is a long-running central.py and every event it printed.
type process struct {
	t       *testing.T
	cmd     *exec.Cmd
	stderr  *tekentest.SyncBuffer
	mu      sync.Mutex
	events  []event
	changed chan struct{} // closed and replaced on each event
	exited  chan struct{} // closed when the process has ended
	err     error         // its exit, once exited is closed
}

func (c *centralPy) start(args ...string) *process {
	c.t.Helper()
	p := &process{t: c.t, cmd: c.command(args...), stderr: &tekentest.SyncBuffer{}, changed: make(chan struct{}), exited: make(chan struct{})}
	p.cmd.Stderr = p.stderr
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		c.t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var e event
			if json.Unmarshal(sc.Bytes(), &e) != nil {
				e = event{"event": "unparsed", "line": sc.Text()}
			}
			p.mu.Lock()
			p.events = append(p.events, e)
			close(p.changed)
			p.changed = make(chan struct{})
			p.mu.Unlock()
		}
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	c.t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
		if c.t.Failed() {
			c.t.Logf("central.py %v stderr:\n%s", args, p.stderr.Bytes())
		}
	})
	return p
}

// matching returns the events so far that satisfy ok.
func (p *process) matching(ok func(event) bool) []event {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []event
	for _, e := range p.events {
		if ok(e) {
			out = append(out, e)
		}
	}
	return out
}

// waitFor waits, as events arrive, until done holds for the events so far.
func (p *process) waitFor(what string, done func([]event) bool) {
	p.t.Helper()
	deadline := time.After(90 * time.Second)
	for {
		p.mu.Lock()
		ok, changed := done(p.events), p.changed
		p.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-changed:
		case <-p.exited:
			p.t.Fatalf("central.py exited (%v) waiting for %s\n%s", p.err, what, p.stderr.Bytes())
		case <-deadline:
			p.t.Fatalf("central.py: no %s in 90s\n%s", what, p.stderr.Bytes())
		}
	}
}

// awaitJobs waits until, for every job id, an event satisfying ok names
// it, and returns the first such event of each.
func (p *process) awaitJobs(what string, ids []string, ok func(event) bool) map[string]event {
	p.t.Helper()
	found := map[string]event{}
	p.waitFor(fmt.Sprintf("%s for %v", what, ids), func(evs []event) bool {
		clear(found)
		for _, e := range evs {
			if id, _ := e["job_id"].(string); slices.Contains(ids, id) && found[id] == nil && ok(e) {
				found[id] = e
			}
		}
		return len(found) == len(ids)
	})
	return found
}

// await waits for one event satisfying ok.
func (p *process) await(what string, ok func(event) bool) event {
	p.t.Helper()
	var got event
	p.waitFor(what, func(evs []event) bool {
		i := slices.IndexFunc(evs, ok)
		if i >= 0 {
			got = evs[i]
		}
		return i >= 0
	})
	return got
}

// stop ends the process as systemd would, with SIGTERM, and wants a clean
// exit.
func (p *process) stop() {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		p.t.Fatal(err)
	}
	select {
	case <-p.exited:
		if p.err != nil {
			p.t.Fatalf("central.py after SIGTERM: %v\n%s", p.err, p.stderr.Bytes())
		}
	case <-time.After(30 * time.Second):
		p.t.Fatalf("central.py did not stop\n%s", p.stderr.Bytes())
	}
}

func write(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	write(t, to, b)
}

// TestWireMatchesVectors: central.py's signer makes the test vectors'
// Ed25519 envelopes byte for byte from their payloads, its kids are the
// vectors' kids for both keys, and its verifier accepts the vectors'
// signed result and refuses it for any changed document, so what
// TestCentralPy proves against tekend holds for the published vectors too.
func TestWireMatchesVectors(t *testing.T) {
	needPython(t)
	const script = `
import json, sys
sys.dont_write_bytecode = True
sys.path.insert(0, ".")
import wire
vectors, keys = sys.argv[1], sys.argv[2]
m = json.load(open(vectors + "/manifest.json"))
for k in m["keys"]:
    key = wire.DispatcherKey.load(keys + "/" + k["name"] + ".pem")
    assert key.kid == k["kid"] and key.alg == k["alg"], (k["name"], key.kid)
key = wire.DispatcherKey.load(keys + "/ed25519.pem")
n = 0
for e in m["envelopes"]:
    if e["key"] == "ed25519":
        got = key.sign(e["typ"], open(vectors + "/" + e["payload"], "rb").read())
        assert got == open(vectors + "/" + e["file"], "rb").read(), e["file"]
        n += 1
# kid.json's keys, when it is there: their kids, leading zero bytes and all.
import os
from cryptography.hazmat.primitives import serialization
if os.path.exists(vectors + "/kid.json"):
    doc = json.load(open(vectors + "/kid.json"))
    for e in (doc if isinstance(doc, list) else doc.get("keys", [])):
        if "public_key_pem" in e:
            got = wire.kid_of(serialization.load_pem_public_key(e["public_key_pem"].encode()))
            assert got == e["kid"], (e.get("name"), got, e["kid"])
# verify.py on the vectors' signed result: it holds, and a changed
# document does not.
import copy, verify
v = verify.Verifier([vectors + "/pki/ca.pem"])
job = json.load(open(vectors + "/job.json"))
result = json.load(open(vectors + "/result-signed.json"))
v.result(job, result)
for i in range(len(job["documents"])):
    bad = copy.deepcopy(job)
    bad["documents"][i]["content"] = wire.base64.b64encode(b"another letter").decode()
    try:
        v.result(bad, result)
    except verify.Invalid:
        continue
    raise SystemExit("a changed %s verified" % bad["documents"][i]["format"])
v.close()
print(n)
`
	vectors := filepath.Join("..", "..", "api", "testdata", "vectors")
	out, err := exec.Command(python, "-c", script, vectors, filepath.Join("..", "..", "api", "testdata", "keys")).CombinedOutput()
	if err != nil || string(bytes.TrimSpace(out)) == "0" {
		t.Fatalf("wire.py against the vectors: %v\n%s", err, out)
	}
}
