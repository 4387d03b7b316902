package daemon_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tekenid/teken/daemon"
	"github.com/tekenid/teken/daemon/kiosk"
	"github.com/tekenid/teken/internal/tekentest"
	"github.com/tekenid/teken/internal/testenv"
)

// When pcscd dies the terminal says so everywhere IT looks — /readyz, the
// metrics and the retained status — and recovers when pcscd is back.
func TestHealthFollowsPCSCD(t *testing.T) {
	tm := tekentest.Start(t, nil)
	ctx := context.Background()
	ready := func() (int, string) {
		res, err := http.Get(tm.MetricsURL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	if code, body := ready(); code != http.StatusOK {
		t.Fatalf("/readyz before: %d %s", code, body)
	}
	tm.PCSCD.Kill()
	err := testenv.WaitFor(ctx, 20*time.Second, func() error {
		if code, body := ready(); code != http.StatusServiceUnavailable || !bytes.Contains([]byte(body), []byte("pcscd")) {
			return fmt.Errorf("/readyz %d %q", code, body)
		}
		if m := get(t, tm.MetricsURL+"/metrics"); !bytes.Contains(m, []byte("teken_pcscd_up 0\n")) {
			return fmt.Errorf("metrics still say pcscd is up")
		}
		if !bytes.Contains(tm.Wire.Bytes(), []byte(`"last_error":"pcscd:`)) {
			return fmt.Errorf("no status naming pcscd yet")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := tm.PCSCD.Restart(); err != nil {
		t.Fatal(err)
	}
	err = testenv.WaitFor(ctx, 20*time.Second, func() error {
		if code, body := ready(); code != http.StatusOK {
			return fmt.Errorf("/readyz %d %q", code, body)
		}
		if m := get(t, tm.MetricsURL+"/metrics"); !bytes.Contains(m, []byte("teken_pcscd_up 1\n")) {
			return fmt.Errorf("metrics do not say pcscd is back")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A broker that hangs (SIGSTOP: its sockets stay open, nothing is
// answered) must not freeze the main loop, which turns taps into pages and
// pets the watchdog: the retained status waits for its PUBACK elsewhere.
func TestHungBrokerDoesNotStopTheMainLoop(t *testing.T) {
	tm := tekentest.Start(t, nil)
	ca := tekentest.NewSignerCA(t)
	siti := ca.NewOfficial(t, "Siti Rahmawati", "198703152010012003", "123456", 3001)
	k := tm.Kiosk()
	k.Await("idle", func(v kiosk.View) bool { return v.State == kiosk.StateIdle })
	if err := tm.Broker.Freeze(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tm.Broker.Thaw() })
	ctx := context.Background()
	// Each tap and removal changes the status, which goes out on the next
	// status tick (1 s in tests); a tap and a removal take pcscd about
	// 0.6 s to see, so eight of them span several ticks. With the publish
	// on the main loop, the first tap after a tick is never read.
	for i := range 8 {
		if err := siti.Card.Insert(ctx, tm.PCSCD.VPCDAddr(0)); err != nil {
			t.Fatal(err)
		}
		k.Await(fmt.Sprintf("the token, tap %d", i+1), func(v kiosk.View) bool { return v.State == kiosk.StateToken })
		if err := siti.Card.Remove(); err != nil {
			t.Fatal(err)
		}
		k.Await(fmt.Sprintf("idle, removal %d", i+1), func(v kiosk.View) bool { return v.State == kiosk.StateIdle })
	}
}

// IT's endpoints answer only requests that name the terminal: a web page
// that rebinds its own name to 127.0.0.1 still sends that name in Host.
func TestMetricsRefuseOtherHosts(t *testing.T) {
	tm := tekentest.Start(t, nil, func(c *daemon.Config) {
		c.Metrics.AllowedHosts = []string{"Kendari-Setda-01.pemprov.go.id", "10.20.1.17"}
	})
	for _, c := range []struct {
		host string
		want int
	}{
		{"", http.StatusOK}, // the listener's own address
		{"localhost:9470", http.StatusOK},
		{"[::1]:9470", http.StatusOK},
		{"kendari-setda-01.pemprov.go.id:9470", http.StatusOK},
		{"10.20.1.17", http.StatusOK},
		{"attacker.example:9470", http.StatusMisdirectedRequest},
		{"127.0.0.1.nip.io:9470", http.StatusMisdirectedRequest},
		{"10.20.1.18:9470", http.StatusMisdirectedRequest},
	} {
		for _, path := range []string{"/", "/metrics", "/healthz", "/readyz"} {
			req, err := http.NewRequest(http.MethodGet, tm.MetricsURL+path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if c.host != "" {
				req.Host = c.host
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			got := resp.StatusCode
			if path == "/readyz" && got == http.StatusServiceUnavailable {
				got = http.StatusOK // answered: readiness is another test's concern
			}
			if got != c.want {
				t.Errorf("Host %q %s: %d, want %d", c.host, path, resp.StatusCode, c.want)
			}
		}
	}
}

// The metrics port's / lists its endpoints; other paths stay 404.
func TestMetricsIndex(t *testing.T) {
	tm := tekentest.Start(t, nil)
	for path, want := range map[string]int{"/": http.StatusOK, "/nope": http.StatusNotFound, "/metrics/": http.StatusNotFound} {
		resp, err := http.Get(tm.MetricsURL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s: %d, want %d", path, resp.StatusCode, want)
		}
		if path == "/" {
			for _, link := range []string{`href="metrics"`, `href="healthz"`, `href="readyz"`} {
				if !strings.Contains(string(body), link) {
					t.Errorf("/ lacks %s:\n%s", link, body)
				}
			}
		}
	}
}
