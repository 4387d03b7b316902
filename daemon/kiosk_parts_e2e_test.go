package daemon_test

import (
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/tekenid/teken/daemon/kiosk"
	"github.com/tekenid/teken/internal/tekentest"
)

// partCodes are the codes of what the page says about the parts.
func partCodes(v kiosk.View) []string {
	var out []string
	for _, m := range v.Parts {
		out = append(out, m.Code)
	}
	return out
}

// The kiosk says what /readyz says, from the same probes, within a status
// tick and without a token event: the card service dies and comes back, the
// broker goes away and comes back.
func TestKioskFollowsParts(t *testing.T) {
	tm := tekentest.Start(t, nil)
	k := tm.Kiosk()
	readyz := func() (int, string) {
		t.Helper()
		res, err := http.Get(tm.MetricsURL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	k.Await("idle, every part ready", func(v kiosk.View) bool {
		return v.State == kiosk.StateIdle && len(v.Parts) == 0 && !v.Unavailable
	})

	tm.PCSCD.Kill()
	v := k.Await("the card service down", func(v kiosk.View) bool {
		return v.State == kiosk.StateIdle && v.Unavailable && slices.Contains(partCodes(v), kiosk.CodePCSC)
	})
	if code, body := readyz(); code != http.StatusServiceUnavailable || !strings.Contains(body, "pcscd") {
		t.Errorf("the page says %v, /readyz %d %q", partCodes(v), code, body)
	}
	if got := kiosk.Text("id", v.Parts[0]); !strings.Contains(got, "Layanan kartu") {
		t.Errorf("the official reads %q", got)
	}
	if err := tm.PCSCD.Restart(); err != nil {
		t.Fatal(err)
	}
	k.Await("the card service back", func(v kiosk.View) bool {
		return v.State == kiosk.StateIdle && !v.Unavailable && len(v.Parts) == 0
	})
	if code, body := readyz(); code != http.StatusOK {
		t.Errorf("the page says all is well, /readyz %d %q", code, body)
	}

	tm.Broker.Stop()
	v = k.Await("offline", func(v kiosk.View) bool { return slices.Contains(partCodes(v), kiosk.CodeOffline) })
	if v.Unavailable {
		t.Errorf("offline, yet no token can be used: %+v", v)
	}
	if code, body := readyz(); code != http.StatusServiceUnavailable || !strings.Contains(body, "broker") {
		t.Errorf("the page says offline, /readyz %d %q", code, body)
	}
	if err := tm.Broker.Restart(); err != nil {
		t.Fatal(err)
	}
	k.Await("back online", func(v kiosk.View) bool { return len(v.Parts) == 0 && !v.Unavailable })
}
