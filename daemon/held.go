package daemon

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"time"

	"github.com/tekenid/teken/api"
	"github.com/tekenid/teken/queue"
)

// heldRetry is how often signed letters held below signing.level are taken
// further: the network they wait for comes back on its own.
var heldRetry = time.Minute

// heldStore is the part of the store held results live in.
type heldStore interface {
	HeldResults(ctx context.Context, limit int) ([]queue.Result, error)
	ReleaseResult(ctx context.Context, seq uint64, payload []byte) error
	Head(ctx context.Context, id string) (queue.Job, error)
}

var _ heldStore = (*queue.Store)(nil)

// retryHeld takes held results further every heldRetry until ctx ends. With
// signing.require_level a letter signed while a timestamp authority or a
// responder could not be reached is kept, signed, in the store, and goes
// to the central side only once every document reached the level; this
// loop, off the main loop and with no card, is what gets it there.
func (d *Daemon) retryHeld(ctx context.Context) error {
	t := time.NewTicker(heldRetry)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if n, err := d.signer.releaseHeld(ctx, d.store); err != nil && ctx.Err() == nil {
				d.log.Warn("held results not taken further", "err", err)
			} else if n > 0 {
				d.outbox.notify()
				d.statusChanged()
			}
		}
	}
}

// releaseHeld takes every held result further and releases those whose
// documents all reached the level in force; it reports how many it
// released. A held result of a reload that dropped require_level is
// released as it is.
func (s *docSigner) releaseHeld(ctx context.Context, store heldStore) (int, error) {
	held, err := store.HeldResults(ctx, 100)
	if err != nil {
		return 0, err
	}
	released := 0
	for _, r := range held {
		payload, err := s.further(ctx, store, r)
		if err != nil {
			s.log.Info("held result still below the level", "job", r.JobID, "err", err)
			continue
		}
		if err := store.ReleaseResult(ctx, r.Seq, payload); err != nil {
			return released, err
		}
		s.log.Info("held result released", "job", r.JobID)
		released++
	}
	return released, nil
}

// further takes the documents of one held result to the level, and
// returns its new encoding once all are there, or why not.
func (s *docSigner) further(ctx context.Context, store heldStore, r queue.Result) ([]byte, error) {
	res, err := api.DecodeResult(r.Payload)
	if err != nil {
		return nil, fmt.Errorf("held result of %s: %w", r.JobID, err)
	}
	cert, err := x509.ParseCertificate(res.SignerCert)
	if err != nil {
		return nil, fmt.Errorf("held result of %s: signer certificate: %w", r.JobID, err)
	}
	job, err := store.Head(ctx, r.JobID)
	if err != nil {
		return nil, err
	}
	var meta jobMeta
	_ = json.Unmarshal(job.Meta, &meta) // written by intake; sizes default to 0 below
	sizes := map[string]int{}
	for _, d := range meta.Docs {
		sizes[d.ID] = int(d.Size)
	}
	parts := s.ltv()
	for i := range res.Documents {
		sd := signedDoc{SignedDocument: res.Documents[i], originalSize: sizes[res.Documents[i].ID]}
		if sd.LevelError == "" {
			continue
		}
		s.takeTo(ctx, parts, &sd, cert, nil)
		if sd.LevelError != "" && parts.requires() {
			return nil, fmt.Errorf("document %s: %s", sd.ID, sd.LevelError)
		}
		sd.LevelError = api.SanitizeDetail(sd.LevelError)
		sd.TimestampError = api.SanitizeDetail(sd.TimestampError)
		res.Documents[i] = sd.SignedDocument
	}
	out, err := api.Encode(res)
	if err != nil {
		return nil, fmt.Errorf("encode result %s: %w", r.JobID, err)
	}
	return out, nil
}
