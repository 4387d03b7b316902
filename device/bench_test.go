package device

import (
	"context"
	"crypto"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"

	"github.com/tekenid/teken/device/pivsim"
)

// BenchmarkPresenceLatency inserts and removes a token through vpcd and
// reports the time from the Insert or Remove call to the event, and from
// pcscd seeing the card (Insert returns once pcscd asked for the ATR) to the
// event. pcscd polls readers whose driver cannot signal card events (vpcd
// among them) every 400 ms, so each insert and removal starts at a random
// point of that period, as a person's tap does.
func BenchmarkPresenceLatency(b *testing.B) {
	e := newEnv(b, Options{Logger: slog.New(slog.DiscardHandler)})
	card, _ := newCard(b, pivsim.AlgECCP256, pivsim.PINPolicyOnce)
	var arrival, afterPCSCD, removal time.Duration
	n := 0
	for b.Loop() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		dephase()
		start := time.Now()
		if err := card.Insert(ctx, e.pcscd.VPCDAddr(0)); err != nil {
			b.Fatal(err)
		}
		seen := time.Now()
		ev := e.next(b, ctx)
		if ev.Kind != Arrived {
			b.Fatalf("event %v, want arrived", ev.Kind)
		}
		arrival += ev.At.Sub(start)
		afterPCSCD += ev.At.Sub(seen)
		dephase()
		removal += e.remove(b, card, 0)
		cancel()
		n++
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(n) / float64(time.Millisecond) }
	b.ReportMetric(ms(arrival), "ms/arrival")
	b.ReportMetric(ms(afterPCSCD), "ms/arrival-after-pcscd")
	b.ReportMetric(ms(removal), "ms/removal")
	b.ReportMetric(0, "ns/op")
}

// dephase waits a random part of pcscd's 400 ms presence poll.
func dephase() {
	t := time.NewTimer(rand.N(400 * time.Millisecond))
	<-t.C
}

// BenchmarkIdleCPU measures this process's CPU time (getrusage) over 10 s
// of idle watching, with a token present, and reports it per second.
func BenchmarkIdleCPU(b *testing.B) {
	e := newEnv(b, Options{Logger: slog.New(slog.DiscardHandler)})
	card, _ := newCard(b, pivsim.AlgECCP256, pivsim.PINPolicyOnce)
	e.insert(b, card, 0)
	const idle = 10 * time.Second
	var cpu time.Duration
	n := 0
	for b.Loop() {
		before := rusage(b)
		t := time.NewTimer(idle)
		<-t.C
		cpu += rusage(b) - before
		n++
	}
	b.ReportMetric(float64(cpu)/float64(n)/float64(idle/time.Second)/float64(time.Millisecond), "cpu-ms/s")
	b.ReportMetric(0, "ns/op")
}

func rusage(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkSignThroughPCSCD signs through the real pcscd and the software
// token behind vpcd, as tekend does: one letter (a session, the PIN, one
// signature) and a batch of 20 (one session, the PIN before each
// signature: PIN policy always). The software token answers at once, so
// the time is that of pcscd, the vpcd link and this package.
func BenchmarkSignThroughPCSCD(b *testing.B) {
	e := newEnv(b, Options{Logger: slog.New(slog.DiscardHandler)})
	card, _ := newCard(b, pivsim.AlgECCP256, pivsim.PINPolicyAlways)
	e.insert(b, card, 0)
	reader := e.pcscd.Readers[0]
	digest := make([]byte, 32)
	for _, n := range []int{1, 20} {
		b.Run(fmt.Sprintf("letters=%d", n), func(b *testing.B) {
			for b.Loop() {
				err := e.tokens.Session(context.Background(), reader, func(s *Session) error {
					for range n {
						if err := s.VerifyPIN([]byte(pivsim.DefaultPIN), false); err != nil {
							return err
						}
						if _, err := s.Sign(context.Background(), SlotSignature, digest, crypto.SHA256); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N*n), "ms/letter")
		})
	}
}
