package gateway_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/daemon/kiosk"
	"github.com/tekenid/teken/gateway"
	"github.com/tekenid/teken/internal/tekentest"
	"github.com/tekenid/teken/internal/testenv"
)

// The PHP example of examples/php against a real gateway, terminal and
// token: submit.php sends a PDF for an official by NIP, the official signs
// it at the kiosk, webhook.php (under PHP's built-in server) receives the
// gateway's signed deliveries and logs them, and submit.php, waiting on
// that log or on the event feed, downloads the signed PDF.
func TestPHPClient(t *testing.T) {
	php := testenv.LookPath(t, "php")
	if out, err := exec.Command(php, "-r", `exit(extension_loaded("curl") ? 0 : 1);`).CombinedOutput(); err != nil {
		testenv.Unavailable(t, "PHP's curl extension (php-curl): %v %s", err, out)
	}
	examples, err := filepath.Abs(filepath.Join("..", "examples", "php"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	secret := "the webhook secret of a PHP letter system"
	hook := startPHPReceiver(t, php, examples, dir, secret)

	// Before any real delivery: a body signed with another secret, one
	// with its signature changed, and a replay of an old one are refused.
	body := []byte(`{"id":"dlv_1","type":"letter.signed","seq":1,"letter":{"id":"forged","state":"signed","updated_at":"2026-12-04T00:00:00Z"}}`)
	good := gateway.Sign([]byte(secret), body, time.Now())
	for _, c := range []struct{ name, sig string }{
		{"another secret", gateway.Sign([]byte("not the secret"), body, time.Now())},
		{"changed signature", flipLastHex(good)},
		{"an old signature", gateway.Sign([]byte(secret), body, time.Now().Add(-6*time.Minute))},
		{"no signature", ""},
	} {
		if status := postHook(t, hook.url, body, c.sig); status != http.StatusUnauthorized {
			t.Errorf("%s: webhook.php answered %d, want 401", c.name, status)
		}
	}
	if status := postHook(t, hook.url, append(bytes.Clone(body), ' '), good); status != http.StatusUnauthorized {
		t.Errorf("a changed body: webhook.php answered %d, want 401", status)
	}
	if lines := hook.lines(t); len(lines) != 0 {
		t.Fatalf("webhook.php logged refused deliveries: %v", lines)
	}

	r := newPHPRig(t, hook.url+"/teken", []byte(secret))
	pdf := testenv.TextPDF("Undangan rapat koordinasi, Kamis 10 Desember 2026")
	pdfPath := filepath.Join(dir, "undangan.pdf")
	if err := os.WriteFile(pdfPath, pdf, 0o600); err != nil {
		t.Fatal(err)
	}
	submit := func(number string, extra ...string) *phpRun {
		args := []string{filepath.Join(examples, "submit.php"), "--gateway", r.api, "--terminal", terminalID,
			"--nip", "198703152010012003", "--title", "Undangan Rapat Koordinasi", "--number", number,
			"--sender", "Sekretariat Daerah", "--idempotency-key", "php-" + number}
		return startPHP(t, php, dir, []string{"TEKEN_API_KEY=" + r.key}, append(append(args, extra...), pdfPath)...)
	}
	// One waits on webhook.php's log, the other on the event feed.
	outLog, outFeed := filepath.Join(dir, "signed-log.pdf"), filepath.Join(dir, "signed-feed.pdf")
	byLog := submit("005/201/SETDA/2026", "--wait", "--webhook-log", hook.log, "--out", outLog, "--timeout", "120")
	byFeed := submit("005/202/SETDA/2026", "--wait", "--out", outFeed, "--timeout", "120")
	idLog, idFeed := byLog.firstLine(t), byFeed.firstLine(t)
	if api.ValidJobID(idLog) != nil || api.ValidJobID(idFeed) != nil || idLog == idFeed {
		t.Fatalf("submit.php printed %q and %q, want two letter ids", idLog, idFeed)
	}
	// The same command again is the same letter: the idempotency key.
	if again := submit("005/201/SETDA/2026"); again.firstLine(t) != idLog || again.wait(t) != 0 {
		t.Fatalf("submit.php again under its key: %q, want %s; stderr %s", again.stdout.Bytes(), idLog, again.stderr.Bytes())
	}

	waitState(t, r, idLog, "stored")
	waitState(t, r, idFeed, "stored")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := r.official.Card.Insert(ctx, r.pcscd.VPCDAddr(0)); err != nil {
		t.Fatal(err)
	}
	k := tekentest.OpenKiosk(t, r.kioskURL)
	k.Await("both letters", func(v kiosk.View) bool { return v.CanSign && len(v.Jobs) == 2 })
	if status, answer := k.Sign([]string{idLog, idFeed}, r.official.PIN); status != http.StatusOK {
		t.Fatalf("sign at the kiosk: %d %v", status, answer)
	}

	for _, c := range []struct {
		run *phpRun
		out string
	}{{byLog, outLog}, {byFeed, outFeed}} {
		if code := c.run.wait(t); code != 0 {
			t.Fatalf("submit.php %v: exit %d; stderr:\n%s", c.run.args, code, c.run.stderr.Bytes())
		}
		t.Logf("submit.php, its progress:\n%s", c.run.stderr.Bytes())
		got, err := os.ReadFile(c.out)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(got, []byte("%PDF-")) || !bytes.Contains(got, []byte("/ByteRange")) || len(got) <= len(pdf) {
			t.Fatalf("%s: %d bytes, not a signed PDF of the %d bytes submitted", c.out, len(got), len(pdf))
		}
	}

	// webhook.php logged each letter's changes up to signed, each line
	// one delivery the gateway signed; the log of submit.php's letter is
	// what it waited on.
	if err := testenv.WaitFor(context.Background(), time.Minute, func() error {
		seen := map[string]map[string]bool{}
		for _, l := range hook.lines(t) {
			if !l.Verified || l.Delivery == "" || l.Delivery != l.Event.ID || l.Event.Type != "letter."+string(l.Event.Letter.State) {
				return testenv.Permanent(fmt.Errorf("log line %+v", l))
			}
			if seen[l.Event.Letter.ID] == nil {
				seen[l.Event.Letter.ID] = map[string]bool{}
			}
			seen[l.Event.Letter.ID][string(l.Event.Letter.State)] = true
		}
		for _, id := range []string{idLog, idFeed} {
			// sent may be skipped: a terminal can answer before the
			// gateway records the publication.
			for _, s := range []string{"queued", "stored", "signed"} {
				if !seen[id][s] {
					return fmt.Errorf("letter %s: no %s event in webhook.php's log yet (%v)", id, s, seen[id])
				}
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var dl struct {
		Deliveries []gateway.DeliveryView `json:"deliveries"`
	}
	r.call("GET", "/v1/letters/"+idLog+"/deliveries", r.key, nil, "", nil, &dl)
	for _, d := range dl.Deliveries {
		if !d.Delivered || d.LastStatus != http.StatusNoContent {
			t.Errorf("delivery to webhook.php %+v", d)
		}
	}

	// The rest of the class: a page of letters by cursor, a letter, the
	// feed, a letter sent as JSON and cancelled, and the errors of a
	// cancel of a final letter, an unknown letter and an unknown
	// document, each with its code and both texts.
	script := `require $argv[1];
$gw = new TekenGateway($argv[2], getenv('TEKEN_API_KEY'));
$ids = [];
$page = $gw->listLetters(['state' => 'signed'], null, 1);
$ids[] = $page['letters'][0]['id'];
$page = $gw->listLetters(['state' => 'signed'], $page['next_cursor'], 1);
$ids[] = $page['letters'][0]['id'];
$all = array_map(fn($l) => $l['id'], iterator_to_array($gw->allLetters(['state' => 'signed']), false));
$letter = $gw->getLetter($argv[3]);
$feed = $gw->events(0, 1, 1000);
$inline = $gw->submitLetter(['terminal' => 'kendari-setda-01', 'signer' => ['nip' => '198703152010012003'],
    'title' => 'Surat yang ditarik', 'number' => '005/203/SETDA/2026', 'sender' => 'Sekretariat Daerah',
    'documents' => [['id' => 'surat', 'media_type' => 'application/pdf', 'format' => 'pades',
        'content' => base64_encode(file_get_contents($argv[4]))]]]);
$withdrawn = $gw->cancel($inline['id'], 'salah kirim');
$errors = [];
foreach ([fn() => $gw->cancel($argv[3], 'salah kirim'), fn() => $gw->getLetter('0190a8e2-5b7c-7000-8000-000000000000'),
          fn() => $gw->downloadSigned($argv[3], 'lampiran')] as $f) {
    try { $f(); $errors[] = null; } catch (TekenGatewayException $e) {
        $errors[] = ['status' => $e->status, 'code' => $e->errorCode, 'en' => $e->messageEn, 'id' => $e->messageId];
    }
}
echo json_encode(['pages' => $ids, 'all' => $all, 'state' => $letter['state'], 'signed' => $letter['documents'][0]['signed'],
    'events' => count($feed['events']), 'next' => $feed['next'], 'inline' => $inline['id'],
    'cancel_requested' => $withdrawn['cancel_requested'] ?? false, 'errors' => $errors]);`
	run := startPHP(t, php, dir, []string{"TEKEN_API_KEY=" + r.key}, "-r", script, filepath.Join(examples, "TekenGateway.php"), r.api, idLog, pdfPath)
	if code := run.wait(t); code != 0 {
		t.Fatalf("the class: exit %d: %s %s", code, run.stdout.Bytes(), run.stderr.Bytes())
	}
	var got struct {
		Pages, All []string
		State      string
		Signed     string
		Events     int
		Next       uint64
		Inline     string
		Cancel     bool `json:"cancel_requested"`
		Errors     []*struct {
			Status int
			Code   string
			En, ID string
		}
	}
	if err := json.Unmarshal(run.stdout.Bytes(), &got); err != nil {
		t.Fatalf("the class printed %s: %v", run.stdout.Bytes(), err)
	}
	both := func(ids []string) bool {
		return len(ids) == 2 && ids[0] != ids[1] && strings.Contains(idLog+idFeed, ids[0]) && strings.Contains(idLog+idFeed, ids[1])
	}
	if !both(got.Pages) || !both(got.All) || got.State != "signed" || got.Signed != "/v1/letters/"+idLog+"/documents/surat/signed" ||
		got.Events != 8 || got.Next == 0 {
		t.Errorf("the class said %s", run.stdout.Bytes())
	}
	// The letter submitted as JSON was withdrawn: at once if still
	// queued, or by its terminal.
	if api.ValidJobID(got.Inline) != nil || !got.Cancel {
		t.Errorf("the class's JSON letter %q, cancel requested %v", got.Inline, got.Cancel)
	} else {
		waitState(t, r, got.Inline, "cancelled")
	}
	want := []struct {
		status int
		code   string
	}{{http.StatusConflict, "letter_final"}, {http.StatusNotFound, "not_found"}, {http.StatusNotFound, "no_document"}}
	for i, w := range want {
		if i >= len(got.Errors) || got.Errors[i] == nil {
			t.Errorf("error %d: none, want %d %s", i, w.status, w.code)
			continue
		}
		e := got.Errors[i]
		if e.Status != w.status || e.Code != w.code || e.En == "" || e.ID == "" || e.En == e.ID {
			t.Errorf("error %d: %+v, want %d %s with English and Indonesian text", i, e, w.status, w.code)
		}
	}
}

// flipLastHex changes the last hex digit of a signature header.
func flipLastHex(sig string) string {
	if strings.HasSuffix(sig, "0") {
		return sig[:len(sig)-1] + "1"
	}
	return sig[:len(sig)-1] + "0"
}

// phpReceiver is webhook.php under PHP's built-in server.
type phpReceiver struct {
	url string
	log string // the JSON lines it appends
}

// hookLine is a line of webhook.php's log.
type hookLine struct {
	ReceivedAt string               `json:"received_at"`
	Delivery   string               `json:"delivery"`
	Verified   bool                 `json:"verified"`
	Event      gateway.WebhookEvent `json:"event"`
}

func (h *phpReceiver) lines(t *testing.T) []hookLine {
	t.Helper()
	raw, err := os.ReadFile(h.log)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []hookLine
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		var l hookLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("webhook.php's log line %q: %v", sc.Bytes(), err)
		}
		out = append(out, l)
	}
	return out
}

func startPHPReceiver(t *testing.T, php, examples, dir, secret string) *phpReceiver {
	t.Helper()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(testenv.FreePort(t)))
	h := &phpReceiver{url: "http://" + addr, log: filepath.Join(dir, "teken-events.jsonl")}
	docroot := filepath.Join(dir, "www")
	if err := os.Mkdir(docroot, 0o700); err != nil {
		t.Fatal(err)
	}
	srv := startPHP(t, php, docroot, []string{"TEKEN_WEBHOOK_SECRET=" + secret, "TEKEN_WEBHOOK_LOG=" + h.log},
		"-S", addr, "-t", docroot, filepath.Join(examples, "webhook.php"))
	if err := testenv.WaitFor(context.Background(), 30*time.Second, func() error {
		if srv.exited() {
			return testenv.Permanent(fmt.Errorf("php -S ended: %s", srv.stderr.Bytes()))
		}
		res, err := http.Get(h.url + "/teken")
		if err != nil {
			return err
		}
		res.Body.Close()
		if res.StatusCode != http.StatusMethodNotAllowed {
			return testenv.Permanent(fmt.Errorf("GET of webhook.php: %d, want 405", res.StatusCode))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return h
}

// postHook posts a delivery to webhook.php as the gateway would.
func postHook(t *testing.T, url string, body []byte, sig string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url+"/teken", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if sig != "" {
		req.Header.Set(gateway.SignatureHeader, sig)
	}
	req.Header.Set("Teken-Delivery", "dlv_1")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

// phpRun is a php process the test started; it is killed, if still
// running, when the test ends.
type phpRun struct {
	args           []string
	stdout, stderr *tekentest.SyncBuffer
	done           chan struct{}
	code           int
}

func startPHP(t *testing.T, php, dir string, env []string, args ...string) *phpRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, php, args...)
	cmd.Dir = dir
	// Only what PHP needs of the environment: no worker processes of the
	// built-in server (PHP_CLI_SERVER_WORKERS) that a kill would miss.
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}, env...)
	p := &phpRun{args: args, stdout: &tekentest.SyncBuffer{}, stderr: &tekentest.SyncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.stdout, p.stderr
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start php %v: %v", args, err)
	}
	go func() {
		defer close(p.done)
		err := cmd.Wait()
		p.code = cmd.ProcessState.ExitCode()
		if err != nil && p.code == 0 {
			p.code = -1
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-p.done
	})
	return p
}

func (p *phpRun) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// wait returns the exit status, waiting at most two minutes.
func (p *phpRun) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-p.done:
		return p.code
	case <-time.After(2 * time.Minute):
		t.Fatalf("php %v still running; stderr:\n%s", p.args, p.stderr.Bytes())
		return 0
	}
}

// firstLine waits for the process's first line of output.
func (p *phpRun) firstLine(t *testing.T) string {
	t.Helper()
	var line string
	if err := testenv.WaitFor(context.Background(), time.Minute, func() error {
		out := string(p.stdout.Bytes())
		if l, _, ok := strings.Cut(out, "\n"); ok {
			line = l
			return nil
		}
		if p.exited() {
			return testenv.Permanent(fmt.Errorf("php %v ended (exit %d) without a line; stderr:\n%s", p.args, p.code, p.stderr.Bytes()))
		}
		return fmt.Errorf("php %v: no line yet", p.args)
	}); err != nil {
		t.Fatal(err)
	}
	return line
}

// newPHPRig is newRig with the letter system's webhooks sent to hookURL
// (webhook.php) instead of a sink in the test.
func newPHPRig(t *testing.T, hookURL string, secret []byte) *rig {
	r := &rig{t: t}
	dir := t.TempDir()
	r.pcscd = testenv.StartPCSCD(t)
	broker := testenv.StartMosquitto(t)
	ca := tekentest.NewSignerCA(t)
	r.official = ca.NewOfficial(t, "Siti Rahmawati", "198703152010012003", "123456", 7001)

	write := fileWriter(t, dir)
	var keyFile string
	r.kioskURL, keyFile = startTerminal(t, dir, broker.URL, ca)

	apiKey, hash := gateway.NewAPIKey()
	r.key = apiKey
	gcfg := gateway.DefaultConfig()
	gcfg.Listen = "127.0.0.1:0"
	gcfg.Store.Path = filepath.Join(dir, "gateway", "gateway.db")
	gcfg.Broker.URLs = []string{broker.URL}
	gcfg.Broker.ClientID = "gateway-php-test"
	gcfg.DispatcherKeyFile = keyFile
	gcfg.SignerCertFiles = []string{write("officials.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: r.official.Cert.Raw}))}
	gcfg.Webhook.MinBackoff = gateway.Duration{Duration: 100 * time.Millisecond}
	gcfg.Webhook.MaxBackoff = gateway.Duration{Duration: time.Second}
	gcfg.Clients = []gateway.ClientConfig{{ID: "surat-php", KeySHA256: []string{hash}, Terminals: []string{"kendari-*"},
		Webhooks: []gateway.EndpointConfig{{Name: "php", URL: hookURL, SecretFile: write("hook.secret", secret)}}}}
	g, err := gateway.New(gcfg, gateway.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	r.gw = g
	r.api = "http://" + g.Addr()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("gateway: %v", err)
		}
	})
	if err := testenv.WaitFor(context.Background(), time.Minute, func() error {
		res, err := http.Get(r.api + "/readyz")
		if err != nil {
			return err
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			return fmt.Errorf("readyz %d", res.StatusCode)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return r
}
