package transport

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/internal/testenv"
)

// TestFleetRefusedSubscription: a broker that refuses the status
// subscription answers SUBACK 0x80 (MQTT 3.1.1 §3.9.3), which paho does not
// report as an error. The fleet must say so instead of showing an empty
// fleet. Mosquitto 2.0 grants a subscription its ACL denies and then
// delivers nothing, so a broker that refuses is played on loopback.
func TestFleetRefusedSubscription(t *testing.T) {
	url := refusingBroker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	f, err := OpenFleet(ctx, Connection{Brokers: []string{url}, ClientID: "fleet-" + newUUID(t)[:8], Logger: testLogger(t)}, "")
	if err == nil {
		_ = f.Close(ctx)
		t.Fatal("OpenFleet succeeded with its subscription refused")
	}
	if !strings.Contains(err.Error(), "refused subscription") {
		t.Fatalf("err %v, want it to name the refused subscription", err)
	}
}

// refusingBroker speaks just enough MQTT 3.1.1 on a free loopback port to
// accept a connection and refuse every subscription.
func refusingBroker(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					typ, body, err := readPacket(r)
					if err != nil {
						return
					}
					var reply []byte
					switch typ >> 4 {
					case 1: // CONNECT → CONNACK, accepted
						reply = []byte{0x20, 2, 0, 0}
					case 8: // SUBSCRIBE → SUBACK, one refusal per filter
						reply = []byte{0x90, 0, body[0], body[1]}
						for rest := body[2:]; len(rest) >= 3; {
							n := int(rest[0])<<8 | int(rest[1])
							if len(rest) < 3+n {
								break
							}
							rest = rest[3+n:]
							reply = append(reply, 0x80)
						}
						reply[1] = byte(len(reply) - 2)
					case 12: // PINGREQ → PINGRESP
						reply = []byte{0xd0, 0}
					case 14: // DISCONNECT
						return
					}
					if reply != nil {
						if _, err := c.Write(reply); err != nil {
							return
						}
					}
				}
			})
		}
	})
	return "tcp://" + ln.Addr().String()
}

// readPacket reads one MQTT control packet: its first byte and its body.
func readPacket(r *bufio.Reader) (byte, []byte, error) {
	typ, err := r.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	n, shift := 0, 0
	for {
		b, err := r.ReadByte()
		if err != nil {
			return 0, nil, err
		}
		n |= int(b&0x7f) << shift
		if b&0x80 == 0 {
			break
		}
		if shift += 7; shift > 21 {
			return 0, nil, errors.New("remaining length too long")
		}
	}
	body := make([]byte, n)
	_, err = io.ReadFull(r, body)
	return typ, body, err
}

// TestFleetSeesRetainedStatus: the fleet shows the terminal's retained
// status, and an invalid one is counted, not shown.
func TestFleetSeesRetainedStatus(t *testing.T) {
	m := testenv.StartMosquitto(t)
	r := newRig(t, m, Connection{ClientID: "terminal-" + newUUID(t)[:8]})
	select {
	case <-r.status:
	case <-time.After(20 * time.Second):
		t.Fatal("no status from the terminal")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	forger, err := OpenMonitor(ctx, MonitorConfig{
		Connection: Connection{Brokers: []string{m.URL}, ClientID: "forger", Logger: testLogger(t)},
		Filters:    []string{"nothing/here"},
		Handle:     func(Message) {},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer forger.Close(ctx)
	if err := forger.Publish(ctx, api.Topic(api.DefaultRoot, "other-01", api.KindStatus), []byte(`{"v":1}`), true); err != nil {
		t.Fatal(err)
	}
	f, err := OpenFleet(ctx, Connection{Brokers: []string{m.URL}, ClientID: "fleet-" + newUUID(t)[:8], Logger: testLogger(t)}, "")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close(ctx)
	if err := f.Settle(ctx, 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	fleet, invalid := f.Snapshot()
	if len(fleet) != 1 || fleet[0].Terminal != testTerminal || fleet[0].State != api.StateOnline {
		t.Errorf("fleet %+v, want %s online", fleet, testTerminal)
	}
	if invalid != 1 {
		t.Errorf("invalid %d, want 1", invalid)
	}
}

// TestDispatcherReportsLostBroker: a central system can tell from
// Connected and Err that its broker is gone, and why.
func TestDispatcherReportsLostBroker(t *testing.T) {
	m := testenv.StartMosquitto(t)
	r := newRig(t, m, Connection{ClientID: "terminal-" + newUUID(t)[:8]})
	if !r.d.Connected() || r.d.Err() != nil {
		t.Fatalf("connected %v, err %v: want connected without error", r.d.Connected(), r.d.Err())
	}
	m.Stop()
	// Connected drops as soon as paho sees the socket close; Err is set
	// by the connection-lost handler right after.
	waitFor(t, 30*time.Second, func() error {
		if r.d.Connected() {
			return errors.New("still connected")
		}
		if r.d.Err() == nil {
			return errors.New("disconnected, but Err does not say why")
		}
		return nil
	})
}
