package daemon_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/daemon"
	"github.com/tekenid/teken/daemon/kiosk"
	"github.com/tekenid/teken/internal/tekentest"
	"github.com/tekenid/teken/internal/testenv"
)

// notifySocket stands in for systemd: it collects every sd_notify datagram,
// and when each WATCHDOG=1 came.
type notifySocket struct {
	mu   sync.Mutex
	msgs []string
	pets []time.Time
}

func listenNotify(t *testing.T) *notifySocket {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	t.Setenv("WATCHDOG_USEC", "200000")
	t.Setenv("WATCHDOG_PID", "")
	n := &notifySocket{}
	go func() {
		buf := make([]byte, 4096)
		for {
			k, err := conn.Read(buf)
			if err != nil {
				return
			}
			n.mu.Lock()
			n.msgs = append(n.msgs, string(buf[:k]))
			if strings.Contains(string(buf[:k]), "WATCHDOG=1") {
				n.pets = append(n.pets, time.Now())
			}
			n.mu.Unlock()
		}
	}()
	return n
}

// maxGapSince is the longest wait between watchdog pets from start until
// now.
func (n *notifySocket) maxGapSince(start time.Time) time.Duration {
	n.mu.Lock()
	defer n.mu.Unlock()
	var longest time.Duration
	prev := start
	for _, p := range append(n.pets, time.Now()) {
		if p.Before(start) {
			continue
		}
		longest = max(longest, p.Sub(prev))
		prev = p
	}
	return longest
}

func (n *notifySocket) index(prefix string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	for i, m := range n.msgs {
		if strings.HasPrefix(m, prefix) {
			return i
		}
	}
	return -1
}

func (n *notifySocket) count(line string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	c := 0
	for _, m := range n.msgs {
		if strings.Contains(m, line) {
			c++
		}
	}
	return c
}

func TestSystemdReadyStatusWatchdogStopping(t *testing.T) {
	os.Unsetenv("WATCHDOG_PID")
	n := listenNotify(t)
	tm := tekentest.Start(t, nil)
	ctx := context.Background()
	err := testenv.WaitFor(ctx, 10*time.Second, func() error {
		if n.index("READY=1") < 0 {
			return errString("no READY=1 yet")
		}
		if n.count("WATCHDOG=1") < 3 {
			return errString("watchdog not petted 3 times yet")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if i, s := n.index("READY=1"), n.index("STATUS=starting"); s < 0 || s > i {
		t.Errorf("STATUS=starting at %d, READY=1 at %d: %q", s, i, n.msgs)
	}
	if n.index("READY=1\nSTATUS=") < 0 {
		t.Error("READY=1 carries no STATUS line")
	}
	tm.Stop()
	if n.index("STOPPING=1") < 0 {
		t.Error("no STOPPING=1 at shutdown")
	}
}

// A signing still running at SIGTERM is given the grace period, then
// abandoned: its job goes back to waiting, and tekend stops within the bound.
func TestShutdownAbandonsSigningInFlight(t *testing.T) {
	tm := tekentest.Start(t, nil, func(c *daemon.Config) { c.Signing.ShutdownGrace = daemon.Duration(time.Second) })
	ca := tekentest.NewSignerCA(t)
	siti := ca.NewOfficial(t, "Siti Rahmawati", "198703152010012003", "123456", 3001)
	j := tm.Dispatch(siti, "Surat Tugas Perjalanan Dinas", "094/321/SETDA/XI/2026")
	k := tm.Kiosk()
	ctx := context.Background()
	if err := siti.Card.Insert(ctx, tm.PCSCD.VPCDAddr(0)); err != nil {
		t.Fatal(err)
	}
	k.Await("the letter", func(v kiosk.View) bool { return v.CanSign && len(v.Jobs) == 1 })
	// The card hangs on the signature (as a token waiting for a touch)
	// until the test lets it go.
	entered, release := siti.HoldSignature()
	signed := k.SignInBackground([]string{j.JobID}, "123456")
	<-entered
	stopped := make(chan struct{})
	start := time.Now()
	go func() { tm.Stop(); close(stopped) }()
	// Let the card answer only after the grace period has run out.
	if err := testenv.WaitFor(ctx, 10*time.Second, func() error {
		if !strings.Contains(string(tm.Logs.Bytes()), "abandoning the signing in flight") {
			return errString("grace not over")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	release()
	<-stopped
	t.Logf("tekend stopped %v after SIGTERM with a signing in flight", time.Since(start).Round(time.Millisecond))
	<-signed

	// Restart on the same store: the job waits again, nothing was sent.
	select {
	case r := <-tm.Results:
		t.Fatalf("a result went out for an abandoned signing: %+v", r)
	default:
	}
	logs := string(tm.Logs.Bytes())
	if !strings.Contains(logs, "abandon") {
		t.Errorf("no abandonment in the log")
	}
	_ = api.OutcomeSigned
}

type errString string

func (e errString) Error() string { return string(e) }

// An open kiosk page (its event stream never ends by itself) must not hold
// up shutdown.
func TestShutdownWithKioskOpen(t *testing.T) {
	tm := tekentest.Start(t, nil)
	k := tm.Kiosk()
	k.Await("idle", func(v kiosk.View) bool { return v.State == kiosk.StateIdle })
	start := time.Now()
	tm.Stop()
	t.Logf("stopped in %v with the kiosk open", time.Since(start).Round(time.Millisecond))
	// Shutdown shares one deadline between the HTTP servers and the broker:
	// a page holding the server open would use it up, and the offline
	// status would fail.
	if strings.Contains(string(tm.Logs.Bytes()), "close broker connection") {
		t.Errorf("the offline status was not published cleanly:\n%s", tm.Logs.Bytes())
	}
}
