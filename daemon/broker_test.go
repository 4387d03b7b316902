package daemon_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/daemon"
	"github.com/tekenid/teken/daemon/kiosk"
	"github.com/tekenid/teken/internal/tekentest"
	"github.com/tekenid/teken/internal/testenv"
	"github.com/tekenid/teken/transport"
)

// A broker that hangs (SIGSTOP: its sockets stay open, nothing is answered)
// while the official signs and rejects letters, for much longer than the
// systemd watchdog interval. tekend goes on serving the page and petting the
// watchdog, says on /readyz and in the metrics that the broker is stalled,
// and once the broker runs again every result reaches the central side
// exactly once, the retained status says the broker was stalled, and no
// goroutine is left behind.
func TestStalledBrokerIsShownAndResultsDrainAfter(t *testing.T) {
	n := listenNotify(t) // WatchdogSec 0.2 s: petted every 0.1 s
	// The broker has 2 s to answer instead of 10, so the freeze is short.
	daemon.SetBrokerAnswerTimeout(t, 2*time.Second)
	ca := tekentest.NewSignerCA(t)
	tm := tekentest.Start(t, ca)
	siti := ca.NewOfficial(t, "Siti Rahmawati", "198703152010012003", "123456", 7001)
	jobs := []*api.Job{
		tm.Dispatch(siti, "Surat Satu", "100/1"),
		tm.Dispatch(siti, "Surat Dua", "100/2"),
		tm.Dispatch(siti, "Surat Tiga", "100/3"),
	}
	ctx := context.Background()
	k := tm.Kiosk()
	if err := siti.Card.Insert(ctx, tm.PCSCD.VPCDAddr(0)); err != nil {
		t.Fatal(err)
	}
	k.Await("three letters", func(v kiosk.View) bool { return v.State == kiosk.StateToken && v.CanSign && len(v.Jobs) == 3 })
	readyz := func() (int, string) {
		res, err := http.Get(tm.MetricsURL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	if code, body := readyz(); code != http.StatusOK {
		t.Fatalf("/readyz before the freeze: %d %s", code, body)
	}
	http.DefaultClient.CloseIdleConnections()
	goroutinesBefore, mqttBefore := goroutines()

	if err := tm.Broker.Freeze(); err != nil {
		t.Fatal(err)
	}
	thawed := false
	t.Cleanup(func() {
		if !thawed {
			_ = tm.Broker.Thaw()
		}
	})
	petsAtFreeze, frozeAt := n.count("WATCHDOG=1"), time.Now()

	// The first letter is signed; its result's publish gets no PUBACK.
	if code, out := k.Sign([]string{jobs[0].JobID}, "123456"); code != http.StatusOK {
		t.Fatalf("sign during the freeze: %d %v", code, out)
	}
	k.Await("done, one signed", func(v kiosk.View) bool { return v.State == kiosk.StateDone && v.Result != nil && v.Result.Signed == 1 })
	var readyBody string
	err := testenv.WaitFor(ctx, 30*time.Second, func() error {
		code, body := readyz()
		readyBody = body
		if code != http.StatusServiceUnavailable || !strings.Contains(body, "broker: stalled: no answer for") {
			return fmt.Errorf("/readyz %d %q", code, body)
		}
		if m := get(t, tm.MetricsURL+"/metrics"); !bytes.Contains(m, []byte("teken_broker_stalled 1\n")) || !bytes.Contains(m, []byte("teken_broker_connected 1\n")) {
			return errString("metrics do not say stalled and connected")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("/readyz during the freeze: %q", strings.TrimSpace(readyBody))
	petsAtStall := n.count("WATCHDOG=1")

	// The official goes on: takes the token off and taps again, signs the
	// second letter and rejects the third, all while the broker is stalled.
	k.Post("/api/dismiss", map[string]any{})
	if err := siti.Card.Remove(); err != nil {
		t.Fatal(err)
	}
	k.Await("idle after the removal", func(v kiosk.View) bool { return v.State == kiosk.StateIdle })
	if err := siti.Card.Insert(ctx, tm.PCSCD.VPCDAddr(0)); err != nil {
		t.Fatal(err)
	}
	k.Await("two letters left", func(v kiosk.View) bool { return v.State == kiosk.StateToken && v.CanSign && len(v.Jobs) == 2 })
	if code, out := k.Sign([]string{jobs[1].JobID}, "123456"); code != http.StatusOK {
		t.Fatalf("second sign during the freeze: %d %v", code, out)
	}
	k.Await("done, one signed again", func(v kiosk.View) bool { return v.State == kiosk.StateDone && v.Result != nil && v.Result.Signed == 1 })
	k.Post("/api/dismiss", map[string]any{})
	if code, out := k.Post("/api/reject", map[string]any{"job_id": jobs[2].JobID, "reason": "Nomor salah"}); code != http.StatusOK {
		t.Fatalf("reject during the freeze: %d %v", code, out)
	}
	k.Await("no letter left", func(v kiosk.View) bool { return v.State == kiosk.StateToken && len(v.Jobs) == 0 })
	quietFrom, petsAtQuiet := time.Now(), n.count("WATCHDOG=1") // no tap is read from here on

	// The watchdog is still petted, the broker still frozen, well after
	// the last tap: ten more pets.
	if err := testenv.WaitFor(ctx, 30*time.Second, func() error {
		if c := n.count("WATCHDOG=1"); c < petsAtQuiet+10 {
			return fmt.Errorf("%d pets since the last tap", c-petsAtQuiet)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if code, body := readyz(); code != http.StatusServiceUnavailable || !strings.Contains(body, "broker: stalled") {
		t.Fatalf("/readyz at the end of the freeze: %d %q", code, body)
	}
	petsDuringFreeze, afterStall := n.count("WATCHDOG=1")-petsAtFreeze, n.count("WATCHDOG=1")-petsAtStall
	maxGap, quietGap := n.maxGapSince(frozeAt), n.maxGapSince(quietFrom)
	if err := tm.Broker.Thaw(); err != nil {
		t.Fatal(err)
	}
	thawed = true
	frozeFor := time.Since(frozeAt)
	// Logged, not asserted: the gaps depend on the machine's load. The
	// main loop reads a tapped token itself (pcscd), so the longest gap
	// falls on a tap; after the last tap only the broker could hold it.
	t.Logf("frozen for %v: watchdog petted %d times (%d after the stall was found); longest gap %v, %v after the last tap (WatchdogSec 200ms)",
		frozeFor.Round(time.Millisecond), petsDuringFreeze, afterStall, maxGap.Round(time.Millisecond), quietGap.Round(time.Millisecond))

	// Everything drains: every result once, every ResultAck taken, the
	// broker answering.
	got := map[string]int{}
	take := func() {
		for {
			select {
			case r := <-tm.Results:
				got[r.JobID]++
			default:
				return
			}
		}
	}
	var metrics []byte
	err = testenv.WaitFor(ctx, 60*time.Second, func() error {
		take()
		if len(got) < len(jobs) {
			return fmt.Errorf("%d of %d results", len(got), len(jobs))
		}
		metrics = get(t, tm.MetricsURL+"/metrics")
		for _, want := range []string{"teken_results_undelivered 0\n", "teken_broker_stalled 0\n", "teken_broker_connected 1\n"} {
			if !bytes.Contains(metrics, []byte(want)) {
				return fmt.Errorf("metrics lack %q", strings.TrimSpace(want))
			}
		}
		if code, body := readyz(); code != http.StatusOK {
			return fmt.Errorf("/readyz %d %q", code, body)
		}
		if !bytes.Contains(tm.Wire.Bytes(), []byte(`"last_error":"broker: was stalled for`)) {
			return errString("no status saying the broker was stalled")
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, metrics)
	}
	// What the broker keeps as the retained status, as a new subscriber
	// gets it, says the broker was stalled and answers again.
	if st := retainedStatus(t, tm); st.State != api.StateOnline || !strings.HasPrefix(st.LastError, "broker: was stalled for ") {
		t.Errorf("retained status after the thaw: state %q, last_error %q", st.State, st.LastError)
	}
	take()
	for _, j := range jobs {
		if got[j.JobID] != 1 {
			t.Errorf("job %s: %d results taken by the central side, want 1", j.JobID, got[j.JobID])
		}
	}

	// No goroutine is left waiting on the broker: the count comes back to
	// what it was before the freeze, with a little slack for the HTTP
	// connections coming and going; those in the transport and paho come
	// back to at most what they were (no reconnect happened: the keep-alive
	// is 30 s; one fewer is a message handler that was running before).
	const slack = 5
	var goroutinesAfter, mqttAfter int
	err = testenv.WaitFor(ctx, 20*time.Second, func() error {
		http.DefaultClient.CloseIdleConnections()
		goroutinesAfter, mqttAfter = goroutines()
		if goroutinesAfter > goroutinesBefore+slack || mqttAfter > mqttBefore {
			return fmt.Errorf("%d goroutines (%d in MQTT code), %d (%d) before the freeze", goroutinesAfter, mqttAfter, goroutinesBefore, mqttBefore)
		}
		return nil
	})
	t.Logf("goroutines: %d before the freeze, %d after the drain; in the transport and paho: %d before, %d after",
		goroutinesBefore, goroutinesAfter, mqttBefore, mqttAfter)
	if err != nil {
		buf := make([]byte, 1<<20)
		t.Fatalf("%v\n%s", err, buf[:runtime.Stack(buf, true)])
	}
}

// goroutines counts the process's goroutines, all of them and those with
// the transport or paho on their stack.
func goroutines() (all, mqtt int) {
	buf := make([]byte, 4<<20)
	buf = buf[:runtime.Stack(buf, true)]
	for _, g := range strings.Split(string(buf), "\n\n") {
		all++
		if strings.Contains(g, "github.com/eclipse/paho.mqtt.golang") || strings.Contains(g, "github.com/tekenid/teken/transport.") {
			mqtt++
		}
	}
	return all, mqtt
}

// retainedStatus reads the terminal's retained status as a new subscriber
// gets it.
func retainedStatus(t *testing.T, tm *tekentest.Terminal) *api.Status {
	t.Helper()
	got := make(chan []byte, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	m, err := transport.OpenMonitor(ctx, transport.MonitorConfig{
		Connection: transport.Connection{Brokers: []string{tm.Broker.URL}, ClientID: "retained-status", Logger: slog.New(slog.DiscardHandler)},
		Filters:    []string{api.Topic(api.DefaultRoot, tm.ID, api.KindStatus)},
		Handle: func(m transport.Message) {
			if m.Retained {
				select {
				case got <- m.Payload:
				default:
				}
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(ctx)
	select {
	case b := <-got:
		st, err := api.DecodeStatus(b)
		if err != nil {
			t.Fatalf("retained status: %v", err)
		}
		return st
	case <-ctx.Done():
		t.Fatal("no retained status")
		return nil
	}
}
