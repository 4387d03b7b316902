package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Ctl runs rabbitmqctl against the node (add_user, set_permissions,
// set_topic_permissions, eval, …) and returns what it printed on its
// standard output. The node must be running.
//
// rabbitmqctl is an Erlang node of its own, a hidden one, that reaches the
// node through the node's epmd with the node's cookie: it gets the node's
// environment (its HOME, which holds the cookie, its ERL_EPMD_PORT and its
// RABBITMQ_ settings) and the node's name with -n. Its own distribution
// listener goes on 127.0.0.1 (inet_dist_use_interface, as the node's) and
// on a free port instead of the first free one of 35672–35682
// (RABBITMQ_CTL_DIST_PORT_MIN and _MAX, rabbitmq-env), and it never starts
// an epmd of its own (-start_epmd false), which would outlive it. Debian's
// /usr/sbin/rabbitmqctl would switch to the rabbitmq user, and to that
// user's cookie, so the script beside the node's rabbitmq-server is run.
func (r *RabbitMQ) Ctl(ctx context.Context, args ...string) (string, error) {
	if len(args) == 0 {
		return "", errors.New("rabbitmqctl: no command")
	}
	port, err := FreePorts(1)
	if err != nil {
		return "", fmt.Errorf("rabbitmqctl %s: %w", args[0], err)
	}
	p := strconv.Itoa(port)
	env := append(r.env(),
		"RABBITMQ_CTL_ERL_ARGS=-start_epmd false -kernel inet_dist_use_interface {127,0,0,1}",
		"RABBITMQ_CTL_DIST_PORT_MIN="+p,
		"RABBITMQ_CTL_DIST_PORT_MAX="+p,
	)
	cmd := exec.CommandContext(ctx, filepath.Join(filepath.Dir(r.bin), "rabbitmqctl"), append([]string{"-n", r.Node}, args...)...)
	cmd.Dir = r.dir
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// The script execs erl, whose port programs run in its process
	// group: a cancelled context ends them all.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	waited, err := StartHeld(cmd)
	if err != nil {
		return "", fmt.Errorf("rabbitmqctl %s: %w", args[0], err)
	}
	if err := <-waited; err != nil {
		return stdout.String(), fmt.Errorf("rabbitmqctl %s: %w: %s", args[0], err, strings.TrimSpace(stderr.String()+"\n"+stdout.String()))
	}
	return stdout.String(), nil
}
