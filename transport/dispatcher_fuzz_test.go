package transport

import (
	"context"
	"log/slog"
	"testing"

	"github.com/tekenid/teken/api"
)

// fuzzMessage is a paho.Message from the fuzzer.
type fuzzMessage struct {
	topic   string
	payload []byte
}

func (m fuzzMessage) Duplicate() bool   { return false }
func (m fuzzMessage) Qos() byte         { return 1 }
func (m fuzzMessage) Retained() bool    { return false }
func (m fuzzMessage) Topic() string     { return m.topic }
func (m fuzzMessage) MessageID() uint16 { return 1 }
func (m fuzzMessage) Payload() []byte   { return m.payload }
func (m fuzzMessage) Ack()              {}

// FuzzDispatcherHandle feeds what any terminal (or anyone with access to
// the broker) can publish to the central side's message handler: it must
// neither panic nor ask for a retry of bytes that can never succeed.
func FuzzDispatcherHandle(f *testing.F) {
	f.Add("teken/v1/t/kendari-setda-01/results", []byte(`{"v":1,"job_id":"0d5e1c1a-3b2c-4d5e-8f9a-0b1c2d3e4f50","terminal":"kendari-setda-01","outcome":"rejected","reason":"rejected_by_signer","completed_at":"2026-11-26T23:26:22Z"}`))
	f.Add("teken/v1/t/kendari-setda-01/sync", []byte(`{"v":1,"terminal":"kendari-setda-01","at":"2026-11-26T23:26:22Z","jobs_waiting":[],"results_undelivered":["0d5e1c1a-3b2c-4d5e-8f9a-0b1c2d3e4f50"]}`))
	f.Add("teken/v1/t/kendari-setda-01/receipts", []byte(`{"v":1,"terminal":"kendari-setda-01","envelope_sha256":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08","status":"refused","reason":"malformed","at":"2026-11-26T23:26:22Z"}`))
	f.Add("teken/v1/t/x/status", []byte(`{"v":1}`))
	signer, _ := newPKI(f)
	d := &Dispatcher{cfg: DispatcherConfig{Root: api.DefaultRoot, Signer: signer, Jobs: NewMemoryJobs(), Seen: NewMemoryResults(16), AckTTL: 1e9, ResendGrace: DefaultResendGrace}}
	d.syncs = newSyncer(d)
	d.acks = newAcker(d)
	s, err := newSession(Connection{Brokers: []string{"tcp://127.0.0.1:1"}, ClientID: "fuzz", Logger: slog.New(slog.DiscardHandler)}, sessionConfig{handle: d.handleMessage})
	if err != nil {
		f.Fatal(err)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	d.s = s
	d.acks.start()
	defer func() { s.cancel(); d.syncs.wg.Wait(); d.acks.wg.Wait() }()
	f.Fuzz(func(t *testing.T, topic string, payload []byte) {
		if err := d.handle(context.Background(), fuzzMessage{topic, payload}); err != nil {
			t.Fatalf("handle asks for a retry of %q: %v", topic, err)
		}
	})
}
