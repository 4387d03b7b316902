package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/internal/testenv"
)

// notifications collects what a process sends to $NOTIFY_SOCKET, as
// systemd would receive it.
type notifications struct {
	mu   sync.Mutex
	msgs []string
}

func listenNotifications(t *testing.T, path string) *notifications {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	n := &notifications{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		for {
			k, err := conn.Read(buf)
			if err != nil {
				return
			}
			if m := string(buf[:k]); !strings.HasPrefix(m, "WATCHDOG=1") {
				n.mu.Lock()
				n.msgs = append(n.msgs, m)
				n.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() { conn.Close(); <-done })
	return n
}

// since waits until the messages after the first from have one starting
// with each of prefixes, in order, and returns how many there are then.
func (n *notifications) since(t *testing.T, from int, prefixes ...string) int {
	t.Helper()
	var end int
	err := testenv.WaitFor(context.Background(), time.Minute, func() error {
		n.mu.Lock()
		defer n.mu.Unlock()
		want := prefixes
		for _, m := range n.msgs[min(from, len(n.msgs)):] {
			if len(want) > 0 && strings.HasPrefix(m, want[0]) {
				want = want[1:]
			}
		}
		if len(want) > 0 {
			return fmt.Errorf("no %q after message %d yet: %q", want[0], from, n.msgs)
		}
		end = len(n.msgs)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return end
}

// The built tekend reloads on a real SIGHUP under the sd_notify protocol of
// Type=notify, refuses a broken file and stays up, and stops on SIGTERM.
func TestSIGHUPReloadsTheProcess(t *testing.T) {
	broker := testenv.StartMosquitto(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "tekend")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build tekend: %v\n%s", err, out)
	}
	key, err := api.GenerateKey(api.AlgES256)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := api.MarshalPublicKeyPEM(key.Public())
	keyFile := filepath.Join(dir, "dispatcher.pub")
	if err := os.WriteFile(keyFile, pub, 0o644); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "tekend.toml")
	config := func(level, brokerURL string) {
		t.Helper()
		text := fmt.Sprintf(`terminal_id = "kendari-setda-07"
data_dir = %q
log_level = %q
[broker]
urls = [%q]
[dispatcher]
key_files = [%q]
[kiosk]
listen = "127.0.0.1:%d"
[metrics]
listen = "127.0.0.1:%d"
`, filepath.Join(dir, "data"), level, brokerURL, keyFile, testenv.FreePort(t), testenv.FreePort(t))
		if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	config("info", broker.URL)
	n := listenNotifications(t, filepath.Join(dir, "notify.sock"))
	logPath := filepath.Join(dir, "tekend.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd := exec.Command(bin, "-config", conf)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "JOURNAL_STREAM=") && !strings.HasPrefix(kv, "NOTIFY_SOCKET=") && !strings.HasPrefix(kv, "WATCHDOG_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "NOTIFY_SOCKET="+filepath.Join(dir, "notify.sock"),
		testenv.SocketEnv+"="+filepath.Join(dir, "no-pcscd")) // no card service: not needed here
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var waitErr error
	exited := make(chan struct{})
	go func() { waitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("tekend log:\n%s", b)
		}
	})
	seen := n.since(t, 0, "READY=1")

	logSince := func(from int) string {
		b, _ := os.ReadFile(logPath)
		return string(b[min(from, len(b)):])
	}
	mark := func() int { b, _ := os.ReadFile(logPath); return len(b) }

	at := mark()
	config("debug", "tcp://127.0.0.1:1884")
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	seen = n.since(t, seen, "RELOADING=1", "READY=1")
	logs := logSince(at)
	if !strings.Contains(logs, `msg="configuration reloaded"`) || !strings.Contains(logs, "log_level=debug") {
		t.Errorf("reload not logged with the new level:\n%s", logs)
	}
	if !strings.Contains(logs, "broker.urls changed; restart tekend to apply") {
		t.Errorf("the broker change not named as needing a restart:\n%s", logs)
	}

	at = mark()
	if err := os.WriteFile(conf, []byte("log_level = \"error\"\n[broker\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	n.since(t, seen, "RELOADING=1", "READY=1")
	if logs := logSince(at); !strings.Contains(logs, "configuration not reloaded") {
		t.Errorf("a broken file not refused:\n%s", logs)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-exited
	if waitErr != nil {
		t.Errorf("tekend after SIGTERM: %v", waitErr)
	}
}
