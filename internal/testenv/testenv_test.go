package testenv_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-piv/piv-go/v2/piv"

	"github.com/tekenid/teken/device/pivsim"
	"github.com/tekenid/teken/internal/testenv"
	"github.com/tekenid/teken/transport"
)

func TestPrivatePCSCDListsVirtualReaders(t *testing.T) {
	d := testenv.StartPCSCD(t)
	var cards []string
	err := testenv.WaitFor(context.Background(), 10*time.Second, func() error {
		var err error
		cards, err = piv.Cards()
		return err
	})
	if err != nil {
		t.Fatalf("piv.Cards through %s: %v\npcscd log:\n%s", d.Socket, err, d.Log())
	}
	for _, want := range d.Readers {
		if !slices.Contains(cards, want) {
			t.Errorf("reader %q not listed; got %q", want, cards)
		}
	}
}

func TestPrivatePCSCDRestart(t *testing.T) {
	d := testenv.StartPCSCD(t)
	d.Kill()
	if _, err := piv.Cards(); err == nil {
		t.Fatal("piv.Cards succeeded with pcscd killed")
	}
	if err := d.Restart(); err != nil {
		t.Fatal(err)
	}
	if _, err := piv.Cards(); err != nil {
		t.Fatalf("piv.Cards after restart: %v", err)
	}
}

// vpcd listens on every address of its network namespace (vpcd.c binds
// INADDR_ANY); the private pcscd's namespace must keep those listeners out
// of reach of the host and its network, and the forwarders that stand in for
// them must listen on loopback only.
func TestPrivatePCSCDVPCDNotReachableFromHost(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("not root: the system pcscd is used, which the sandbox does not confine")
	}
	d := testenv.StartPCSCD(t)
	addrs := []string{"127.0.0.1", "::1", "0.0.0.0"}
	ifaddrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range ifaddrs {
		if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLinkLocalUnicast() {
			addrs = append(addrs, ipn.IP.String())
		}
	}
	listening := hostListeners(t)
	for i := range d.Readers {
		port := d.VPCDPort(i)
		for _, a := range addrs {
			// A connection that got through would be a card in the
			// reader: exactly what must not be possible.
			c, err := net.DialTimeout("tcp", net.JoinHostPort(a, strconv.Itoa(port)), 2*time.Second)
			if err == nil {
				c.Close()
				t.Errorf("vpcd port %d reachable from the host at %s", port, a)
			}
		}
		for _, l := range listening[port] {
			t.Errorf("host namespace has a listener on vpcd's port %d at %s", port, l)
		}
		host, fport, err := net.SplitHostPort(d.VPCDAddr(i))
		if err != nil || host != "127.0.0.1" {
			t.Fatalf("VPCDAddr(%d) = %q, want 127.0.0.1:PORT", i, d.VPCDAddr(i))
		}
		fp, _ := strconv.Atoi(fport)
		if len(listening[fp]) == 0 {
			t.Errorf("no listener for VPCDAddr(%d) %s", i, d.VPCDAddr(i))
		}
		for _, l := range listening[fp] {
			if !net.ParseIP(l).IsLoopback() {
				t.Errorf("forwarder for reader %d listens on %s, beyond loopback", i, l)
			}
		}
	}
}

// A card reaches each reader through its forwarder, and its removal
// reaches pcscd too.
func TestPrivatePCSCDCardThroughForwarder(t *testing.T) {
	d := testenv.StartPCSCD(t)
	cards := make([]*pivsim.Card, len(d.Readers))
	for i := range d.Readers {
		cards[i] = newCard(t, uint32(1000+i))
		insert(t, d, cards[i], i)
	}
	for i, reader := range d.Readers {
		waitSerial(t, reader, uint32(1000+i))
	}
	listed, err := piv.Cards()
	if err != nil {
		t.Fatal(err)
	}
	for _, reader := range d.Readers {
		if !slices.Contains(listed, reader) {
			t.Errorf("reader %q not listed; got %q", reader, listed)
		}
	}
	for i, reader := range d.Readers {
		if err := cards[i].Remove(); err != nil {
			t.Fatal(err)
		}
		waitAbsent(t, reader)
	}
	// And back in: the forwarder serves one connection after another.
	insert(t, d, cards[0], 0)
	waitSerial(t, d.Readers[0], 1000)
	// The forwarder dials from inside pcscd's namespace; every thread of
	// this process must be back in its own.
	threadsAtHome(t)
}

// threadsAtHome fails the test if a thread of this process is in another
// network namespace than the main thread.
func threadsAtHome(t *testing.T) {
	t.Helper()
	home, err := os.Stat("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		ns, err := os.Stat("/proc/self/task/" + task.Name() + "/ns/net")
		if err != nil {
			continue // the thread ended meanwhile
		}
		if !os.SameFile(home, ns) {
			t.Errorf("thread %s is in another network namespace", task.Name())
		}
	}
}

// Restart puts pcscd in a new network namespace; VPCDAddr must stay the
// same and lead into the new one, and while pcscd is down a card can
// neither stay in nor go in.
func TestPrivatePCSCDRestartKeepsVPCDAddr(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("not root: the system pcscd cannot be restarted")
	}
	d := testenv.StartPCSCD(t)
	addr, reader := d.VPCDAddr(0), d.Readers[0]
	card := newCard(t, 2000)
	insert(t, d, card, 0)
	waitSerial(t, reader, 2000)

	d.Kill()
	err := testenv.WaitFor(context.Background(), 10*time.Second, func() error {
		if card.Present() {
			return errors.New("card still in the reader of a dead pcscd")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := card.Insert(ctx, addr); err == nil {
		t.Fatal("Insert succeeded with pcscd down")
	}

	if err := d.Restart(); err != nil {
		t.Fatal(err)
	}
	if got := d.VPCDAddr(0); got != addr {
		t.Fatalf("VPCDAddr(0) after restart = %s, want %s", got, addr)
	}
	insert(t, d, card, 0)
	waitSerial(t, reader, 2000)
}

// Pdeathsig is sent when the thread that forked the child ends, not the
// process (go.dev/issue/27505), and a goroutine that exits locked to its
// thread ends the thread. Whatever this process does with its threads, the
// private pcscd must live on.
func TestPrivatePCSCDOutlivesEndedThreads(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("not root: the system pcscd is used")
	}
	d := testenv.StartPCSCD(t)
	for range 50 {
		done := make(chan struct{})
		go func() {
			defer close(done)
			runtime.LockOSThread() // never unlocked: the thread ends
		}()
		<-done
	}
	if _, err := piv.Cards(); err != nil {
		t.Fatalf("pcscd gone after threads ended: %v\n%s", err, d.Log())
	}
	insert(t, d, newCard(t, 3000), 0)
	waitSerial(t, d.Readers[0], 3000)
}

func newCard(t *testing.T, serial uint32) *pivsim.Card {
	t.Helper()
	c, err := pivsim.New(pivsim.Config{Serial: serial})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func insert(t *testing.T, d *testenv.PCSCD, c *pivsim.Card, i int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.Insert(ctx, d.VPCDAddr(i)); err != nil {
		t.Fatalf("insert into %s: %v\npcscd log:\n%s", d.VPCDAddr(i), err, d.Log())
	}
}

// waitSerial waits until the card in reader answers with serial.
func waitSerial(t *testing.T, reader string, serial uint32) {
	t.Helper()
	err := testenv.WaitFor(context.Background(), 20*time.Second, func() error {
		yk, err := piv.Open(reader)
		if err != nil {
			return err
		}
		defer yk.Close()
		got, err := yk.Serial()
		if err != nil {
			return err
		}
		if got != serial {
			return testenv.Permanent(fmt.Errorf("serial %d in %s, want %d", got, reader, serial))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("card in %s: %v", reader, err)
	}
}

// waitAbsent waits until pcscd reports no card in reader, asking from
// another process (opensc-tool -l reads reader states only): piv.Open in the
// moment pcscd still believes a removed card present leaks an exclusive
// handle (see waitAbsent in device/pivsim).
func waitAbsent(t *testing.T, reader string) {
	t.Helper()
	tool := testenv.LookPath(t, "opensc-tool")
	err := testenv.WaitFor(context.Background(), 10*time.Second, func() error {
		out, err := exec.Command(tool, "-l").CombinedOutput()
		if err != nil {
			return fmt.Errorf("opensc-tool -l: %w: %s", err, out)
		}
		for _, line := range strings.Split(string(out), "\n") {
			if strings.HasSuffix(line, reader) {
				if f := strings.Fields(line); len(f) > 1 && f[1] == "No" {
					return nil
				}
				return fmt.Errorf("card still present: %q", line)
			}
		}
		return fmt.Errorf("reader %s not listed: %s", reader, out)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// hostListeners maps each port that a socket of this network namespace
// listens on to the addresses it listens at, from /proc/net/tcp{,6}.
func hostListeners(t *testing.T) map[int][]string {
	t.Helper()
	m := map[int][]string{}
	for _, name := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(name)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			// fields: sl local_address rem_address st ...; 0A is LISTEN.
			fields := strings.Fields(sc.Text())
			if len(fields) < 4 || fields[3] != "0A" {
				continue
			}
			ip, port, err := procAddr(fields[1])
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			m[port] = append(m[port], ip.String())
		}
		f.Close()
	}
	return m
}

// procAddr decodes a /proc/net/tcp address: the IP as 32-bit words in host
// (little-endian) order, a colon, the port in hex.
func procAddr(s string) (net.IP, int, error) {
	h, p, ok := strings.Cut(s, ":")
	port, err := strconv.ParseUint(p, 16, 16)
	if !ok || err != nil || (len(h) != 8 && len(h) != 32) {
		return nil, 0, fmt.Errorf("bad address %q", s)
	}
	ip := make(net.IP, len(h)/2)
	for w := 0; w < len(h)/8; w++ {
		v, err := strconv.ParseUint(h[w*8:w*8+8], 16, 32)
		if err != nil {
			return nil, 0, fmt.Errorf("bad address %q", s)
		}
		ip[w*4], ip[w*4+1], ip[w*4+2], ip[w*4+3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
	}
	return ip, int(port), nil
}

func TestMosquittoQoS1RoundTrip(t *testing.T) {
	m := testenv.StartMosquitto(t)
	roundTrip(t, transport.Connection{Brokers: []string{m.URL}}, m)
}

func TestMosquittoTLSClientCertificates(t *testing.T) {
	m := testenv.StartMosquittoWith(t, testenv.MosquittoOptions{TLS: true})
	roundTrip(t, transport.Connection{Brokers: []string{m.URL}, TLS: &tls.Config{
		RootCAs:      m.CA.Pool(),
		Certificates: []tls.Certificate{m.Client.TLS},
		MinVersion:   tls.VersionTLS12,
	}}, m)

	other := testenv.NewCA(t, "another CA").Client(t, "intruder")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	mon, err := transport.OpenMonitor(ctx, transport.MonitorConfig{
		Connection: transport.Connection{Brokers: []string{m.URL}, ClientID: "intruder", Logger: quiet(), TLS: &tls.Config{
			RootCAs:      m.CA.Pool(),
			Certificates: []tls.Certificate{other.TLS},
			MinVersion:   tls.VersionTLS12,
		}},
		Filters: []string{"teken/smoke"},
		Handle:  func(transport.Message) {},
	})
	if err == nil {
		_ = mon.Close(ctx)
		t.Fatal("broker accepted a client certificate from another CA")
	}
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

func roundTrip(t *testing.T, conn transport.Connection, m *testenv.Mosquitto) {
	t.Helper()
	conn.ClientID, conn.Logger = "teken-smoke", quiet()
	got := make(chan transport.Message, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	mon, err := transport.OpenMonitor(ctx, transport.MonitorConfig{
		Connection: conn,
		Filters:    []string{"teken/smoke"},
		Handle:     func(m transport.Message) { got <- m },
	})
	if err != nil {
		t.Fatalf("connect and subscribe: %v\nbroker log:\n%s", err, m.Log())
	}
	defer mon.Close(ctx)
	if err := mon.Publish(ctx, "teken/smoke", []byte("halo"), false); err != nil {
		t.Fatalf("publish: %v", err)
	}
	select {
	case m := <-got:
		if string(m.Payload) != "halo" || m.QoS != 1 {
			t.Fatalf("got %q at QoS %d", m.Payload, m.QoS)
		}
	case <-ctx.Done():
		t.Fatal("message not received")
	}
}
