package sandbox

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// RabbitMQ is a private RabbitMQ node with the rabbitmq_mqtt plugin, beside
// any system node: a name, cookie, data and configuration of its own, and an
// epmd of its own, every one of its sockets on 127.0.0.1 and on free ports.
// Its mnesia directory, which holds the durable queues of persistent MQTT
// sessions and their messages, survives Stop, Kill and Restart.
type RabbitMQ struct {
	// URL is the address for MQTT clients: tcp://127.0.0.1:PORT.
	URL string
	// Port is the MQTT listener's port.
	Port int
	// AMQPPort, DistPort and EPMDPort are the node's other listeners:
	// AMQP 0-9-1, Erlang distribution, and its own epmd.
	AMQPPort, DistPort, EPMDPort int
	// Node is the Erlang node name, teken-PORT@localhost.
	Node string

	bin, epmdBin string
	dir          string
	mu           sync.Mutex
	opts         RabbitMQOptions
	run          *rabbitRun
}

// rabbitRun is one life of the node: its epmd and the node itself.
type rabbitRun struct {
	epmd, node *proc
}

// RabbitMQOptions configures a private node.
type RabbitMQOptions struct {
	// Dir holds the configuration, the logs, the node's data (mnesia)
	// and its Erlang cookie (it is the node's HOME).
	Dir string
	// SubscriptionTTL is mqtt.subscription_ttl, in whole milliseconds: how
	// long the queue of a persistent session outlives its last client.
	// Zero keeps the broker's default, 24 hours in 3.10. The queue takes
	// it as x-expires when the session first subscribes, and keeps it.
	SubscriptionTTL time.Duration
	// Extra lines are appended to the generated rabbitmq.conf:
	// "max_message_size = 262144", "mqtt.prefetch = 50".
	Extra []string
}

// rabbitScripts are where the real rabbitmq-server script is looked for, in
// order. Debian's /usr/sbin/rabbitmq-server is a wrapper that, run as root,
// switches to the rabbitmq user (su) with that user's HOME and working
// directory, which would give the node the system node's cookie and no
// access to Dir; /usr/lib/rabbitmq/bin holds the script itself.
var rabbitScripts = []string{"/usr/lib/rabbitmq/bin/rabbitmq-server"}

// StartRabbitMQ starts a node and waits until its MQTT listener accepts a
// session, which takes several seconds.
func StartRabbitMQ(opts RabbitMQOptions) (*RabbitMQ, error) {
	bin, err := lookRabbitMQ()
	if err != nil {
		return nil, err
	}
	epmd, err := exec.LookPath("epmd")
	if err != nil {
		return nil, fmt.Errorf("epmd not found (package erlang-base, which rabbitmq-server needs): %w", err)
	}
	r := &RabbitMQ{bin: bin, epmdBin: epmd, dir: opts.Dir, opts: opts}
	for _, d := range []string{"mnesia", "log"} {
		if err := os.MkdirAll(filepath.Join(r.dir, d), 0o755); err != nil {
			return nil, fmt.Errorf("rabbitmq directory: %w", err)
		}
	}
	// The plugins file takes an Erlang term; only MQTT, no management
	// plugin (which would listen on 15672).
	if err := os.WriteFile(filepath.Join(r.dir, "enabled_plugins"), []byte("[rabbitmq_mqtt].\n"), 0o644); err != nil {
		return nil, fmt.Errorf("write rabbitmq enabled_plugins: %w", err)
	}
	// An empty environment file of its own, so that the system's
	// /etc/rabbitmq/rabbitmq-env.conf (node name, ERL_FLAGS) is not read.
	if err := os.WriteFile(filepath.Join(r.dir, "rabbitmq-env.conf"), nil, 0o644); err != nil {
		return nil, fmt.Errorf("write rabbitmq-env.conf: %w", err)
	}
	var lastErr error
	for range 5 {
		base, err := FreePorts(4)
		if err != nil {
			return nil, err
		}
		r.AMQPPort, r.Port, r.DistPort, r.EPMDPort = base, base+1, base+2, base+3
		// The name follows the port, so that a node that lost a race for
		// its ports leaves no data to the next try.
		r.Node = fmt.Sprintf("teken-%d@localhost", r.Port)
		if lastErr = r.start(); lastErr == nil {
			r.URL = fmt.Sprintf("tcp://127.0.0.1:%d", r.Port)
			return r, nil
		}
	}
	return nil, fmt.Errorf("start rabbitmq: %w", lastErr)
}

func lookRabbitMQ() (string, error) {
	for _, p := range rabbitScripts {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	// Elsewhere (a generic Unix tarball) the one on PATH is the script.
	return lookSbin("rabbitmq-server")
}

func (r *RabbitMQ) config() string {
	// Every listener on 127.0.0.1. The MQTT plugin logs anonymous
	// clients in as guest; guest may connect only from loopback
	// (loopback_users), which every client here is.
	lines := []string{
		"listeners.tcp.default = 127.0.0.1:" + strconv.Itoa(r.AMQPPort),
		"mqtt.listeners.tcp.default = 127.0.0.1:" + strconv.Itoa(r.Port),
		"mqtt.allow_anonymous = true",
		"mqtt.default_user = guest",
		"mqtt.default_pass = guest",
		"log.console = true",
		"log.console.level = info",
		"log.console.use_colors = off",
		"log.file = false",
	}
	if r.opts.SubscriptionTTL > 0 {
		lines = append(lines, "mqtt.subscription_ttl = "+strconv.FormatInt(r.opts.SubscriptionTTL.Milliseconds(), 10))
	}
	lines = append(lines, r.opts.Extra...)
	return strings.Join(lines, "\n") + "\n"
}

// env is the node's whole environment: nothing of the system node's and
// nothing Erlang- or RabbitMQ-specific from this process's.
func (r *RabbitMQ) env() []string {
	var env []string
	for _, kv := range childEnv() {
		k, _, _ := strings.Cut(kv, "=")
		if k == "HOME" || strings.HasPrefix(k, "RABBITMQ_") || strings.HasPrefix(k, "ERL_") || strings.HasPrefix(k, "LISTEN_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env,
		"HOME="+r.dir, // the node's .erlang.cookie is made here
		"ERL_CRASH_DUMP="+filepath.Join(r.dir, "erl_crash.dump"),
		"RABBITMQ_NODENAME="+r.Node,
		"RABBITMQ_BASE="+r.dir,
		"RABBITMQ_MNESIA_BASE="+filepath.Join(r.dir, "mnesia"),
		"RABBITMQ_LOG_BASE="+filepath.Join(r.dir, "log"),
		"RABBITMQ_CONFIG_FILE="+filepath.Join(r.dir, "rabbitmq.conf"),
		"RABBITMQ_ADVANCED_CONFIG_FILE="+filepath.Join(r.dir, "advanced.config"),
		"RABBITMQ_ENABLED_PLUGINS_FILE="+filepath.Join(r.dir, "enabled_plugins"),
		"RABBITMQ_CONF_ENV_FILE="+filepath.Join(r.dir, "rabbitmq-env.conf"),
		"RABBITMQ_DIST_PORT="+strconv.Itoa(r.DistPort),
		// The script then execs the VM instead of running it in the
		// background and waiting (rabbitmq-server, "$RABBITMQ_ALLOW_INPUT"):
		// the VM keeps the pid started here, so it gets SIGTERM itself
		// and the Pdeathsig that ends it if this process dies. -noinput
		// below keeps it from reading a shell from stdin all the same.
		"RABBITMQ_ALLOW_INPUT=true",
		// -start_epmd false: the node uses the epmd started here and
		// never starts a detached one of its own, which would outlive
		// it. inet_dist_use_interface puts the distribution listener
		// on 127.0.0.1. The syslog application, started at boot even
		// with no syslog handler, opens its UDP socket on 0.0.0.0 unless
		// given an address to bind.
		"RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-noinput -start_epmd false -kernel inet_dist_use_interface {127,0,0,1} -syslog protocol {rfc3164,udp,[{ip,{127,0,0,1}}]}",
		"ERL_EPMD_PORT="+strconv.Itoa(r.EPMDPort),
		"ERL_EPMD_ADDRESS=127.0.0.1",
		// Name lookups through the files and the C library only: Erlang's
		// own DNS resolver (inet_res) opens a UDP socket on 0.0.0.0.
		"ERL_INETRC="+filepath.Join(r.dir, "erl_inetrc"),
	)
}

func (r *RabbitMQ) start() error {
	if err := os.WriteFile(filepath.Join(r.dir, "erl_inetrc"), []byte("{lookup, [file, native]}.\n"), 0o644); err != nil {
		return fmt.Errorf("write erl_inetrc: %w", err)
	}
	if err := os.WriteFile(filepath.Join(r.dir, "rabbitmq.conf"), []byte(r.config()), 0o644); err != nil {
		return fmt.Errorf("write rabbitmq.conf: %w", err)
	}
	epmd, err := r.startEPMD()
	if err != nil {
		return err
	}
	node, err := startProcWith(r.dir, "rabbitmq", r.env(), nil, r.bin)
	if err != nil {
		epmd.stop(time.Second)
		return err
	}
	run := &rabbitRun{epmd: epmd, node: node}
	addr := "127.0.0.1:" + strconv.Itoa(r.Port)
	err = WaitFor(context.Background(), 2*time.Minute, func() error {
		if err := node.running(); err != nil {
			return err
		}
		if err := epmd.running(); err != nil {
			return err
		}
		return probeMQTT(addr)
	})
	if err != nil {
		run.stop(false)
		return fmt.Errorf("rabbitmq node %s not ready on %s: %w", r.Node, addr, err)
	}
	r.mu.Lock()
	r.run = run
	r.mu.Unlock()
	return nil
}

// startEPMD starts an epmd for this node alone on 127.0.0.1:EPMDPort.
//
// epmd told to listen on an address (-address, ERL_EPMD_ADDRESS) always
// listens on ::1 as well (epmd_srv.c, "Always listen on the loopback").
// Handed its socket the way systemd does it (-systemd, LISTEN_FDS, fd 3), it
// listens on that socket alone, so this process makes it on 127.0.0.1.
// sd_listen_fds checks LISTEN_PID against the receiver's pid, which the
// shell, exec'ing epmd in its own place, knows.
func (r *RabbitMQ) startEPMD() (*proc, error) {
	ln, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: r.EPMDPort})
	if err != nil {
		return nil, fmt.Errorf("epmd port: %w", err)
	}
	f, err := ln.File()
	ln.Close()
	if err != nil {
		return nil, fmt.Errorf("epmd socket: %w", err)
	}
	defer f.Close() // epmd has its own copy once started
	var env []string
	for _, kv := range childEnv() {
		if !strings.HasPrefix(kv, "LISTEN_") && !strings.HasPrefix(kv, "ERL_") {
			env = append(env, kv)
		}
	}
	p, err := startProcWith(r.dir, "epmd", env, []*os.File{f},
		"/bin/sh", "-c", `LISTEN_PID=$$ LISTEN_FDS=1; export LISTEN_PID LISTEN_FDS; exec "$0" "$@"`,
		r.epmdBin, "-systemd", "-port", strconv.Itoa(r.EPMDPort))
	if err != nil {
		return nil, err
	}
	return p, nil
}

// Stop shuts the node down (SIGTERM, which it takes as a request to stop
// cleanly), waits for it and the port programs it started, then stops its
// epmd. Durable queues and their messages stay in the mnesia directory.
func (r *RabbitMQ) Stop() {
	if run := r.take(); run != nil {
		run.stop(false)
	}
}

// Kill ends the node and its epmd with SIGKILL, as a crash or an OOM kill
// would.
func (r *RabbitMQ) Kill() {
	if run := r.take(); run != nil {
		run.stop(true)
	}
}

func (r *RabbitMQ) take() *rabbitRun {
	r.mu.Lock()
	defer r.mu.Unlock()
	run := r.run
	r.run = nil
	return run
}

// Restart stops the node if it runs and starts it again with the same name,
// ports and data.
func (r *RabbitMQ) Restart() error {
	r.Stop()
	if err := r.start(); err != nil {
		return fmt.Errorf("restart rabbitmq: %w", err)
	}
	return nil
}

// RestartWith restarts the node, as Restart does, with the configuration of
// opts (SubscriptionTTL and Extra; Dir is kept).
func (r *RabbitMQ) RestartWith(opts RabbitMQOptions) error {
	r.Stop()
	r.mu.Lock()
	opts.Dir = r.dir
	r.opts = opts
	r.mu.Unlock()
	if err := r.start(); err != nil {
		return fmt.Errorf("restart rabbitmq: %w", err)
	}
	return nil
}

// Log returns the end of the node's log.
func (r *RabbitMQ) Log() string { return tail(filepath.Join(r.dir, "rabbitmq.log")) }

// stop ends the node, gracefully unless kill, then its epmd. The VM's port
// programs (erl_child_setup, inet_gethost, the disk monitor's shell) run in
// sessions of their own (erl_child_setup calls setsid), out of reach of the
// process group's signal; they end when the VM does, and stop waits until
// they have, so that nothing of the node outlives it.
func (run *rabbitRun) stop(kill bool) {
	children := descendants(run.node.cmd.Process.Pid)
	if kill {
		run.node.kill()
	} else {
		run.node.stop(30 * time.Second)
	}
	err := WaitFor(context.Background(), 10*time.Second, func() error {
		for _, c := range children {
			if c.alive() {
				return fmt.Errorf("pid %d still running", c.pid)
			}
		}
		return nil
	})
	if err != nil {
		for _, c := range children {
			c.kill()
		}
	}
	if kill {
		run.epmd.kill()
	} else {
		run.epmd.stop(5 * time.Second)
	}
}

// startProcWith is startProc with an environment of its own and files the
// child inherits as descriptors 3 and on.
func startProcWith(logDir, name string, env []string, files []*os.File, argv ...string) (*proc, error) {
	logPath := filepath.Join(logDir, name+".log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open %s log: %w", name, err)
	}
	defer logFile.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Dir = logDir
	cmd.Env = env
	cmd.ExtraFiles = files
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	p := &proc{cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	waited, err := StartHeld(cmd)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		p.err = <-waited
		close(p.exited)
	}()
	return p, nil
}

// procID names a process by its pid and its start time, so that a pid the
// kernel has since given to another process is not mistaken for it.
type procID struct {
	pid   int
	start string
}

// alive reports whether the process still runs; a zombie, which has ended
// and waits to be reaped by whoever inherited it, does not.
func (p procID) alive() bool {
	_, start, state, err := procStat(p.pid)
	return err == nil && start == p.start && state != "Z"
}

func (p procID) kill() {
	if p.alive() {
		_ = syscall.Kill(p.pid, syscall.SIGKILL)
	}
}

// descendants lists the processes below pid, from /proc.
func descendants(pid int) []procID {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	children := map[int][]procID{}
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		ppid, start, _, err := procStat(p)
		if err != nil {
			continue
		}
		children[ppid] = append(children[ppid], procID{p, start})
	}
	var out []procID
	queue := []int{pid}
	for len(queue) > 0 {
		for _, c := range children[queue[0]] {
			out = append(out, c)
			queue = append(queue, c.pid)
		}
		queue = queue[1:]
	}
	return out
}

// procStat reads the parent pid, the start time and the state of a process
// from /proc/PID/stat (proc(5)): fields 4, 22 and 3, counted from after the
// command name, which is in parentheses and may contain anything.
func procStat(pid int) (ppid int, start, state string, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, "", "", err
	}
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:]))
	if i < 0 || len(f) < 20 {
		return 0, "", "", fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	// f[0] is field 3.
	if ppid, err = strconv.Atoi(f[1]); err != nil {
		return 0, "", "", fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return ppid, f[19], f[0], nil
}
