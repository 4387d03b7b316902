package demo_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
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

// The demo as `make demo` runs it: tekend built and started as its own
// process, three letters (one a signed PDF), Enter taps the token, the
// official signs all three on the kiosk, every result comes back
// verified; then letters dispatched as the printed tekenctl commands do
// (cms and pades) are verified against their own documents too; and
// cancelling stops everything.
func TestDemo(t *testing.T) {
	testenv.LookPath(t, "pcscd")
	testenv.LookPath(t, "mosquitto")
	if testing.Short() {
		t.Skip("builds tekend")
	}
	tekend := filepath.Join(t.TempDir(), "tekend")
	if out, err := exec.Command("go", "build", "-o", tekend, "../../cmd/tekend").CombinedOutput(); err != nil {
		t.Fatalf("build tekend: %v\n%s", err, out)
	}
	out := &tekentest.SyncBuffer{}
	demoDir := t.TempDir()
	t.Cleanup(func() {
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(demoDir, "gateway", "gateway.log"))
			t.Logf("gateway log:\n%s", log)
		}
	})
	keys, press := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done, stopped := make(chan error, 1), make(chan struct{})
	go func() {
		done <- demo.Run(ctx, demo.Options{Tekend: tekend, Out: out, In: keys, Dir: demoDir})
		close(stopped)
	}()
	t.Cleanup(func() {
		cancel()
		press.Close()
		select {
		case <-stopped:
		case <-time.After(60 * time.Second):
			t.Error("the demo did not stop")
		}
	})

	var kioskURL string
	err := testenv.WaitFor(ctx, 90*time.Second, func() error {
		select {
		case err := <-done:
			return testenv.Permanent(fmt.Errorf("demo ended: %v\n%s", err, out.Bytes()))
		default:
		}
		m := regexp.MustCompile(`Kiosk page:\s+(http://127\.0\.0\.1:\d+)/`).FindSubmatch(out.Bytes())
		if m == nil {
			return fmt.Errorf("not ready yet")
		}
		kioskURL = string(m[1])
		return nil
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, out.Bytes())
	}
	if !strings.Contains(string(out.Bytes()), "PIN:          123456") {
		t.Fatalf("the demo does not print the PIN:\n%s", out.Bytes())
	}
	k := tekentest.OpenKiosk(t, kioskURL)
	press.Write([]byte("\n")) // tap
	v := k.Await("three letters", func(v kiosk.View) bool { return v.CanSign && len(v.Jobs) == 3 })
	var ids []string
	for _, j := range v.Jobs {
		ids = append(ids, j.ID)
	}
	if code, body := k.Sign(ids, "123456"); code != 200 {
		t.Fatalf("sign: %d %v", code, body)
	}
	waitVerified(t, ctx, out, 3)

	// What the printed commands dispatch is checked against its own
	// documents, not the demo's letters.
	st, signerCert := printedSettings(t, out.Bytes())
	dir := t.TempDir()
	for i, f := range []struct{ name, format string }{{"uji.pdf", "cms"}, {"uji-pades.pdf", "pades"}} {
		path := filepath.Join(dir, f.name)
		if err := os.WriteFile(path, demo.LetterPDF("Dinas Uji", fmt.Sprintf("000/%d/DEMO", i+1), "Surat Uji "+f.format, "Isi surat uji."), 0o644); err != nil {
			t.Fatal(err)
		}
		o := ctl.DispatchOptions{Settings: st, SignerCert: signerCert, Title: "Surat Uji " + f.format, Files: []string{path}, Format: api.Format(f.format)}
		if f.format == "pades" {
			o.Visible = &api.Visible{Page: 1, Rect: []float64{340, 40, 560, 120}, VerifyURL: "https://tte.example.go.id/v/uji"}
		}
		if _, err := ctl.Dispatch(ctx, o); err != nil {
			t.Fatalf("dispatch %s: %v", f.name, err)
		}
	}
	v = k.Await("two more letters", func(v kiosk.View) bool {
		if v.State == kiosk.StateDone {
			k.Post("/api/dismiss", map[string]any{})
			return false
		}
		return v.CanSign && len(v.Jobs) == 2
	})
	ids = ids[:0]
	for _, j := range v.Jobs {
		ids = append(ids, j.ID)
	}
	if code, body := k.Sign(ids, "123456"); code != 200 {
		t.Fatalf("sign: %d %v", code, body)
	}
	waitVerified(t, ctx, out, 5)
	if b := out.Bytes(); strings.Contains(string(b), "INVALID") || strings.Contains(string(b), "not checked") {
		t.Errorf("a result was not verified:\n%s", b)
	}
	// The two signed PDFs are saved where the demo says, as they came.
	var saved [][][]byte
	err = testenv.WaitFor(ctx, 10*time.Second, func() error {
		saved = regexp.MustCompile(`signed PDF: (\S+\.pdf)\n`).FindAllSubmatch(out.Bytes(), -1)
		if len(saved) < 2 {
			return fmt.Errorf("%d signed PDFs named", len(saved))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, out.Bytes())
	}
	ca := regexp.MustCompile(`tekenctl verify --ca (\S+) `).FindSubmatch(out.Bytes())
	if ca == nil {
		t.Fatalf("the demo prints no verify command:\n%s", out.Bytes())
	}
	roots, err := ctl.LoadRoots(string(ca[1]))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range saved {
		pdf, err := os.ReadFile(string(m[1]))
		if err != nil {
			t.Fatal(err)
		}
		if v := ctl.VerifyPDF(ctx, pdf, ctl.Trust{Roots: roots}); !v.Valid() || len(v.Signatures) != 1 {
			t.Errorf("%s: %+v, want one valid signature", m[1], v)
		}
	}
	// A letter submitted through the gateway as the printed curl command
	// does: it reaches the kiosk, and its signed PDF comes back by way of
	// the webhook.
	gw := regexp.MustCompile(`curl -H "Authorization: Bearer (\S+)" `).FindSubmatch(out.Bytes())
	api := regexp.MustCompile(`Gateway API:\s+(http://127\.0\.0\.1:\d+) `).FindSubmatch(out.Bytes())
	if gw == nil || api == nil {
		t.Fatalf("the demo prints no gateway command:\n%s", out.Bytes())
	}
	letterID := submitLetter(t, string(api[1]), string(gw[1]), demo.LetterPDF("Dinas Uji", "000/2/DEMO", "Surat Uji", "Lewat gateway."))
	v = k.Await("the gateway's letter", func(v kiosk.View) bool {
		if v.State == kiosk.StateDone {
			k.Post("/api/dismiss", map[string]any{})
			return false
		}
		return v.CanSign && len(v.Jobs) == 1 && v.Jobs[0].ID == letterID
	})
	if code, body := k.Sign([]string{letterID}, "123456"); code != 200 {
		t.Fatalf("sign: %d %v", code, body)
	}
	var viaGateway [][]byte
	err = testenv.WaitFor(ctx, time.Minute, func() error {
		viaGateway = regexp.MustCompile(`signed by way of the gateway: (\S+\.pdf)\n`).FindSubmatch(out.Bytes())
		if viaGateway == nil || !strings.Contains(string(out.Bytes()), "webhook (signature verified): letter "+letterID+" is signed") {
			return fmt.Errorf("no signed webhook and PDF for %s yet", letterID)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, out.Bytes())
	}
	saved = append(saved, viaGateway)

	pdf, err := os.ReadFile(string(viaGateway[1]))
	if err != nil {
		t.Fatal(err)
	}
	if v := ctl.VerifyPDF(ctx, pdf, ctl.Trust{Roots: roots}); !v.Valid() || len(v.Signatures) != 1 {
		t.Errorf("%s: %+v, want one valid signature", viaGateway[1], v)
	}
	press.Write([]byte("\n")) // remove
	k.Await("idle", func(v kiosk.View) bool { return v.State == kiosk.StateIdle })
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("demo: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the demo did not stop on cancel")
	}
	if !strings.Contains(string(out.Bytes()), "Stopping") {
		t.Errorf("no goodbye:\n%s", out.Bytes())
	}
	t.Logf("the demo printed:\n%s", out.Bytes())
}

// waitVerified waits until the demo printed n verified results.
func waitVerified(t *testing.T, ctx context.Context, out *tekentest.SyncBuffer, n int) {
	t.Helper()
	err := testenv.WaitFor(ctx, 60*time.Second, func() error {
		if got := strings.Count(string(out.Bytes()), "VALID, signed by Dr. Siti Rahmawati"); got < n {
			return fmt.Errorf("%d of %d results verified", got, n)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, out.Bytes())
	}
}

// printedSettings reads what the demo tells its operator to use with
// tekenctl: the broker, the dispatcher key and the signer certificate.
func printedSettings(t *testing.T, out []byte) (ctl.Settings, string) {
	t.Helper()
	env := regexp.MustCompile(`export TEKEN_BROKER=(\S+) TEKEN_DISPATCHER_KEY=(\S+)`).FindSubmatch(out)
	cmd := regexp.MustCompile(`tekenctl dispatch --terminal (\S+) --signer (\S+) `).FindSubmatch(out)
	if env == nil || cmd == nil {
		t.Fatalf("the demo prints no tekenctl settings:\n%s", out)
	}
	return ctl.Settings{Brokers: []string{string(env[1])}, DispatcherKey: string(env[2]), Terminal: string(cmd[1])}, string(cmd[2])
}

// submitLetter posts a letter as the demo's curl command does (a
// multipart form: the letter's fields as JSON, the PDF as a file) and
// returns its id.
func submitLetter(t *testing.T, base, key string, pdf []byte) string {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	_ = mw.WriteField("letter", `{"terminal":"demo-setda-01","signer":{"nip":"198703152010012003"},"title":"Surat Uji","number":"000/2/DEMO","sender":"Dinas Uji","documents":[{"id":"surat","file":"surat","format":"pades","visible":{"page":1}}]}`)
	fw, _ := mw.CreateFormFile("surat", "uji.pdf")
	_, _ = fw.Write(pdf)
	_ = mw.Close()
	req, _ := http.NewRequest(http.MethodPost, base+"/v1/letters", &b)
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var l struct {
		ID string `json:"id"`
	}
	raw, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusCreated || json.Unmarshal(raw, &l) != nil || l.ID == "" {
		t.Fatalf("submit through the gateway: %s %s", res.Status, raw)
	}
	return l.ID
}
