package admin_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/tekenid/teken/daemon/admin"
)

// clientEnv, when set, makes the test binary a backup client of the socket
// it names, which prints how the backup ended and exits.
const clientEnv = "TEKEN_ADMIN_TEST_CLIENT"

func TestMain(m *testing.M) {
	if sock := os.Getenv(clientEnv); sock != "" {
		_, err := admin.Backup(context.Background(), sock, io.Discard)
		switch {
		case err == nil:
			fmt.Println("ok")
		case errors.Is(err, admin.ErrRefused):
			fmt.Println("refused")
		default:
			fmt.Println("error:", err)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// A process of another user that can reach the socket is refused on the
// kernel's word of who it is (SO_PEERCRED), and root, on the same socket,
// is served.
func TestOtherUserIsRefused(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("running a client as another user needs root")
	}
	// The client runs as nobody: it needs a copy of this binary and a
	// socket it may open, neither of which a test directory allows.
	dir, err := os.MkdirTemp("", "teken-admin-peer-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "client")
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, self, 0o755); err != nil {
		t.Fatal(err)
	}
	srv, err := admin.Listen(filepath.Join(dir, "tekend.sock"), admin.ServerOptions{Store: openStore(t, 3), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(context.Background()) }()
	defer func() {
		srv.Close(context.Background())
		<-served
	}()
	if err := os.Chmod(srv.Path(), 0o666); err != nil { // past the mode, to the peer check
		t.Fatal(err)
	}
	run := func(cred *syscall.Credential) string {
		cmd := exec.Command(bin, "-test.run=^$")
		cmd.Env = append(os.Environ(), clientEnv+"="+srv.Path())
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("client: %v\n%s", err, out)
		}
		return strings.TrimSpace(string(out))
	}
	if got := run(&syscall.Credential{Uid: 65534, Gid: 65534}); got != "refused" {
		t.Errorf("client as uid 65534: %s, want refused", got)
	}
	if got := run(nil); got != "ok" {
		t.Errorf("client as root: %s, want ok", got)
	}
}
