package daemon_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tekenid/teken/daemon/kiosk"
	"github.com/tekenid/teken/internal/tekentest"
)

// BenchmarkTapToResult measures tekend's own overhead per letter: from the
// moment tekend sees a tap (the page turns to "reading") to the moment the
// central library holds every result of the batch, less the time spent
// waiting on the token (PC/SC and the card, teken_token_busy_seconds_total).
// What remains is tekend's work: page updates, store transactions, CMS
// encoding and checks, and the MQTT round trips through Mosquitto.
func BenchmarkTapToResult(b *testing.B) {
	for _, batch := range []int{1, 20} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			ca := tekentest.NewSignerCA(b)
			tm := tekentest.Start(b, ca)
			siti := ca.NewOfficial(b, "Siti Rahmawati", "198703152010012003", "123456", 5001)
			k := tm.Kiosk()
			ctx := context.Background()
			var perLetter []time.Duration
			var cardTotal, wallTotal time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				ids := make([]string, batch)
				for n := range ids {
					ids[n] = tm.Dispatch(siti, fmt.Sprintf("Surat %d/%d", i, n), "800/"+strconv.Itoa(n)).JobID
				}
				busy0 := tokenBusy(b, tm.MetricsURL)
				b.StartTimer()
				if err := siti.Card.Insert(ctx, tm.PCSCD.VPCDAddr(0)); err != nil {
					b.Fatal(err)
				}
				k.Await("reading", func(v kiosk.View) bool { return v.State == kiosk.StateReading })
				t0 := time.Now()
				k.Await("letters", func(v kiosk.View) bool { return v.CanSign && len(v.Jobs) == batch })
				if code, out := k.Sign(ids, "123456"); code != 200 {
					b.Fatalf("sign: %d %v", code, out)
				}
				for range batch {
					select {
					case <-tm.Results:
					case <-time.After(30 * time.Second):
						b.Fatal("result not received")
					}
				}
				wall := time.Since(t0)
				b.StopTimer()
				card := time.Duration((tokenBusy(b, tm.MetricsURL) - busy0) * float64(time.Second))
				perLetter = append(perLetter, (wall-card)/time.Duration(batch))
				cardTotal += card
				wallTotal += wall
				siti.Card.Remove()
				k.Await("idle", func(v kiosk.View) bool { return v.State == kiosk.StateIdle })
				b.StartTimer()
			}
			b.StopTimer()
			slices.Sort(perLetter)
			q := func(p float64) float64 {
				return float64(perLetter[int(p*float64(len(perLetter)-1))].Microseconds()) / 1000
			}
			b.ReportMetric(q(0.5), "overhead-ms/letter-p50")
			b.ReportMetric(q(0.99), "overhead-ms/letter-p99")
			b.ReportMetric(float64(cardTotal.Milliseconds())/float64(b.N*batch), "card-ms/letter")
			b.ReportMetric(float64(wallTotal.Milliseconds())/float64(b.N*batch), "total-ms/letter")
		})
	}
}

// tokenBusy reads teken_token_busy_seconds_total from /metrics.
func tokenBusy(tb testing.TB, metricsURL string) float64 {
	tb.Helper()
	res, err := http.Get(metricsURL + "/metrics")
	if err != nil {
		tb.Fatal(err)
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "teken_token_busy_seconds_total "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				tb.Fatal(err)
			}
			return f
		}
	}
	tb.Fatal("teken_token_busy_seconds_total not exported")
	return 0
}
