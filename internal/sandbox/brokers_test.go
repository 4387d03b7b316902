package sandbox

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// These tests are in the package itself, to see the processes it starts;
// internal/testenv, which imports this package, cannot help them, so need
// applies its rule: a missing program skips, and fails under CI.
func need(t *testing.T, find func() (string, error)) {
	t.Helper()
	if _, err := find(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("required component unavailable in CI: %v", err)
		}
		t.Skipf("component unavailable: %v", err)
	}
}

func TestNATSLoopbackOnlyAcrossRestartAndKill(t *testing.T) {
	need(t, func() (string, error) { return lookSbin("nats-server") })
	start := time.Now()
	n, err := StartNATS(NATSOptions{Dir: t.TempDir(), MQTT: []string{"max_ack_pending: 100", `ack_wait: "30s"`}, Extra: []string{"max_payload: 1048576"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("nats-server ready in %v", time.Since(start).Round(time.Millisecond))
	defer n.Stop()
	pids := func() []int { return []int{n.running().cmd.Process.Pid} }
	want := []int{n.ClientPort, n.Port}
	checkSockets(t, pids(), want)

	if err := n.Restart(); err != nil {
		t.Fatal(err)
	}
	checkSockets(t, pids(), want)
	n.Kill()
	checkGone(t, nil, want)
	if err := n.Restart(); err != nil {
		t.Fatalf("restart after kill: %v\n%s", err, n.Log())
	}
	checkSockets(t, pids(), want)
	n.Stop()
	checkGone(t, nil, want)
}

func TestRabbitMQLoopbackOnlyAcrossRestartAndKill(t *testing.T) {
	need(t, lookRabbitMQ)
	need(t, func() (string, error) { return exec.LookPath("epmd") })
	start := time.Now()
	r, err := StartRabbitMQ(RabbitMQOptions{Dir: t.TempDir(), SubscriptionTTL: 7 * 24 * time.Hour, Extra: []string{"mqtt.prefetch = 20"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("rabbitmq ready in %v", time.Since(start).Round(time.Millisecond))
	defer r.Stop()
	if !strings.HasPrefix(r.Node, "teken-") || !strings.HasSuffix(r.Node, "@localhost") {
		t.Errorf("node name %q", r.Node)
	}
	want := []int{r.AMQPPort, r.Port, r.DistPort, r.EPMDPort}
	tree := func() []int {
		run := r.current()
		pids := []int{run.node.cmd.Process.Pid, run.epmd.cmd.Process.Pid}
		for _, c := range descendants(pids[0]) {
			pids = append(pids, c.pid)
		}
		return pids
	}
	before := tree()
	checkSockets(t, before, want)

	start = time.Now()
	if err := r.Restart(); err != nil {
		t.Fatal(err)
	}
	t.Logf("rabbitmq stopped and ready again in %v", time.Since(start).Round(time.Millisecond))
	checkGone(t, before, want[:0])
	before = tree()
	checkSockets(t, before, want)

	r.Kill()
	checkGone(t, before, want)
	if err := r.Restart(); err != nil {
		t.Fatalf("restart after kill: %v\n%s", err, r.Log())
	}
	before = tree()
	checkSockets(t, before, want)
	r.Stop()
	checkGone(t, before, want)
}

func (n *NATS) running() *proc {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.p
}

func (r *RabbitMQ) current() *rabbitRun {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.run
}

// checkSockets fails unless every TCP and UDP socket of the processes pids
// is bound to 127.0.0.1, and the ones listening are on exactly the ports
// want.
func checkSockets(t *testing.T, pids []int, want []int) {
	t.Helper()
	inodes := map[string]int{}
	for _, pid := range pids {
		dir := "/proc/" + strconv.Itoa(pid) + "/fd"
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatalf("pid %d: %v", pid, err)
		}
		for _, e := range ents {
			l, err := os.Readlink(dir + "/" + e.Name())
			if err == nil && strings.HasPrefix(l, "socket:[") {
				inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = pid
			}
		}
	}
	var listening []int
	for _, table := range []string{"tcp", "tcp6", "udp", "udp6"} {
		for _, s := range readSockets(t, "/proc/net/"+table) {
			pid, ok := inodes[s.inode]
			if !ok {
				continue
			}
			if !s.ip.Equal(net.IPv4(127, 0, 0, 1)) {
				t.Errorf("pid %d has a %s socket on %s:%d, not 127.0.0.1", pid, table, s.ip, s.port)
			}
			if s.listen && strings.HasPrefix(table, "tcp") {
				listening = append(listening, s.port)
			}
		}
	}
	slices.Sort(listening)
	want = slices.Sorted(slices.Values(want))
	if !slices.Equal(listening, want) {
		t.Errorf("listening on %v, want %v", listening, want)
	}
	if t.Failed() {
		out, _ := exec.Command("ss", "-tulnp").CombinedOutput()
		t.Logf("ss -tulnp:\n%s", out)
	}
}

// checkGone fails if a process of pids still runs or a port of ports is
// still listened on.
func checkGone(t *testing.T, pids []int, ports []int) {
	t.Helper()
	for _, pid := range pids {
		if _, _, state, err := procStat(pid); err == nil && state != "Z" {
			cmd, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
			t.Errorf("pid %d still runs: %q", pid, cmd)
		}
	}
	for _, port := range ports {
		if ok, err := TCPListening(port); err != nil || ok {
			t.Errorf("port %d still listened on (%v)", port, err)
		}
	}
}

type socket struct {
	ip     net.IP
	port   int
	listen bool
	inode  string
}

// readSockets parses a /proc/net/{tcp,udp}{,6} table (proc(5)): the local
// address as hexadecimal 32-bit words in host (little-endian) order, a colon
// and the port; the state (0A is LISTEN for TCP); the inode in field 10.
func readSockets(t *testing.T, name string) []socket {
	t.Helper()
	f, err := os.Open(name)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []socket
	sc := bufio.NewScanner(f)
	sc.Scan() // the header
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 {
			continue
		}
		h, p, _ := strings.Cut(fields[1], ":")
		raw, err1 := hex.DecodeString(h)
		port, err2 := strconv.ParseUint(p, 16, 16)
		if err1 != nil || err2 != nil || len(raw)%4 != 0 {
			t.Fatalf("%s: bad address %q", name, fields[1])
		}
		for w := 0; w < len(raw); w += 4 {
			raw[w], raw[w+1], raw[w+2], raw[w+3] = raw[w+3], raw[w+2], raw[w+1], raw[w]
		}
		out = append(out, socket{ip: net.IP(raw), port: int(port), listen: fields[3] == "0A", inode: fields[9]})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(fmt.Errorf("read %s: %w", name, err))
	}
	return out
}
