package sandbox

import (
	"net"
	"strconv"
	"testing"
)

// A server restarted on its port must not find it taken by an outgoing
// connection, so the ports come from outside the ephemeral range.
func TestFreePortsOutsideEphemeralRange(t *testing.T) {
	lo, hi, ok := quietPortRange(4)
	if !ok {
		t.Skip("this machine's ephemeral range leaves no quiet ports")
	}
	for range 20 {
		base, err := FreePorts(4)
		if err != nil {
			t.Fatal(err)
		}
		if base < lo || base+3 > hi {
			t.Fatalf("ports %d…%d, outside the quiet range %d…%d", base, base+3, lo, hi)
		}
		for i := range 4 {
			l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(base+i))
			if err != nil {
				t.Fatalf("port %d was called free: %v", base+i, err)
			}
			l.Close()
		}
	}
}

// A port something listens on is never called free.
func TestFreePortsSkipsTakenPorts(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	taken := l.Addr().(*net.TCPAddr).Port
	if portsFree(taken, 1) {
		t.Fatalf("port %d is listened on but was called free", taken)
	}
}
