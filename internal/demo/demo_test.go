package demo_test

import (
	"context"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tekenid/teken/daemon/kiosk"
	"github.com/tekenid/teken/internal/demo"
	"github.com/tekenid/teken/internal/tekentest"
	"github.com/tekenid/teken/internal/testenv"
)

// The demo as `make demo` runs it: tekend built and started as its own
// process, three letters, Enter taps the token, the official signs all three
// on the kiosk, every result comes back verified, and cancelling stops
// everything.
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
	keys, press := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done, stopped := make(chan error, 1), make(chan struct{})
	go func() {
		done <- demo.Run(ctx, demo.Options{Tekend: tekend, Out: out, In: keys})
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
	err = testenv.WaitFor(ctx, 60*time.Second, func() error {
		if n := strings.Count(string(out.Bytes()), "valid, signed by Dr. Siti Rahmawati"); n < 3 {
			return fmt.Errorf("%d of 3 results verified", n)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, out.Bytes())
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
}
