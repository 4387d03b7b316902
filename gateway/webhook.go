package gateway

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/tekenid/teken/gateway/store"
)

// Webhooks: every change of a letter is posted to each endpoint of its
// client, at least once, until the endpoint answers 2xx, the interval
// between tries doubling from webhook.min_backoff up to max_backoff. The
// body is the same on every try; the Teken-Signature header signs it with
// the endpoint's secret and the time of the try:
//
//	Teken-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>
//
// A receiver recomputes the HMAC, compares in constant time, and refuses
// a t more than five minutes from its clock (a replay).

// WebhookEvent is the body of a delivery.
type WebhookEvent struct {
	ID     string        `json:"id"`   // the delivery's id: the same on every try of it
	Type   string        `json:"type"` // "letter." and the state
	Seq    uint64        `json:"seq"`  // the event's place in the client's feed (GET /v1/events)
	Letter WebhookLetter `json:"letter"`
}

// WebhookLetter is what a delivery says of its letter; GET
// /v1/letters/{id} says everything.
type WebhookLetter struct {
	ID        string      `json:"id"`
	State     store.State `json:"state"`
	Reason    string      `json:"reason,omitempty"`
	Detail    string      `json:"detail,omitempty"`
	UpdatedAt time.Time   `json:"updated_at"`
}

// SignatureHeader is the header that carries a delivery's signature.
const SignatureHeader = "Teken-Signature"

// Sign returns the Teken-Signature value of body at t.
func Sign(secret, body []byte, t time.Time) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte("."))
	m.Write(body)
	return "t=" + ts + ",v1=" + hex.EncodeToString(m.Sum(nil))
}

func webhookBody(d store.Delivery) ([]byte, error) {
	ev := WebhookEvent{
		ID: fmt.Sprintf("dlv_%d", d.ID), Type: "letter." + string(d.Event.State), Seq: d.Event.Seq,
		Letter: WebhookLetter{ID: d.Event.LetterID, State: d.Event.State, Reason: d.Event.Reason, Detail: d.Event.Detail, UpdatedAt: d.Event.At},
	}
	return json.Marshal(ev)
}

// deliverWebhooks tries the due deliveries until ctx ends.
func (g *Gateway) deliverWebhooks(ctx context.Context) error {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		g.deliverDue(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		case <-g.feed.changed():
		}
	}
}

// deliveryWorkers is how many deliveries are tried side by side.
const deliveryWorkers = 8

func (g *Gateway) deliverDue(ctx context.Context) {
	for ctx.Err() == nil {
		now := time.Now()
		due, err := g.store.ClaimDeliveries(ctx, now, now.Add(g.cfg.Webhook.Timeout.Duration+30*time.Second), 64)
		if err != nil {
			g.log.Warn("webhook deliveries", "err", err)
			return
		}
		if len(due) == 0 {
			return
		}
		var wg sync.WaitGroup
		sem := make(chan struct{}, deliveryWorkers)
		for _, d := range due {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				g.deliver(ctx, d)
			})
		}
		wg.Wait()
	}
}

func (g *Gateway) deliver(ctx context.Context, d store.Delivery) {
	a := store.Attempt{At: time.Now().UTC()}
	ep, ok := g.endpoint(d.Client, d.Endpoint)
	if !ok {
		// The endpoint left the configuration: keep the delivery for
		// when it is back, tried seldom.
		a.Error = "no such endpoint in the configuration"
		a.NextAt = a.At.Add(g.cfg.Webhook.MaxBackoff.Duration)
	} else {
		a.Status, a.Error = g.post(ctx, ep, d)
		a.OK = a.Error == ""
		if !a.OK {
			a.NextAt = a.At.Add(backoff(d.Attempts, g.cfg.Webhook.MinBackoff.Duration, g.cfg.Webhook.MaxBackoff.Duration))
		}
	}
	result := "delivered"
	if !a.OK {
		result = "failed"
		g.log.Warn("webhook not delivered", "client", d.Client, "endpoint", d.Endpoint, "letter", d.Event.LetterID,
			"attempt", d.Attempts+1, "status", a.Status, "err", a.Error, "next", a.NextAt)
	}
	g.metrics.webhooks.WithLabelValues(result).Inc()
	if err := g.store.Attempted(context.WithoutCancel(ctx), d.ID, a); err != nil {
		g.log.Error("record a webhook attempt", "delivery", d.ID, "err", err)
	}
}

// post sends one try and returns the status and what went wrong.
func (g *Gateway) post(ctx context.Context, ep endpoint, d store.Delivery) (int, string) {
	body, err := webhookBody(d)
	if err != nil {
		return 0, err.Error()
	}
	pctx, cancel := context.WithTimeout(ctx, g.cfg.Webhook.Timeout.Duration)
	defer cancel()
	req, err := http.NewRequestWithContext(pctx, http.MethodPost, ep.url, bytes.NewReader(body))
	if err != nil {
		return 0, err.Error()
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "tekengw")
	req.Header.Set(SignatureHeader, Sign(ep.secret, body, time.Now()))
	req.Header.Set("Teken-Delivery", fmt.Sprintf("dlv_%d", d.ID))
	res, err := g.http.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return res.StatusCode, res.Status
	}
	return res.StatusCode, ""
}

// backoff is the wait after the attempts-th failure: min doubled each
// time, capped at most, with a fifth of jitter so that endpoints coming
// back are not hit by every instance at once.
func backoff(attempts int, least, most time.Duration) time.Duration {
	d := least
	for range min(attempts, 30) {
		d *= 2
		if d >= most {
			d = most
			break
		}
	}
	return d - time.Duration(rand.Int64N(int64(d)/5+1))
}

func (g *Gateway) endpoint(clientID, name string) (endpoint, bool) {
	cl, ok := g.clients[clientID]
	if !ok {
		return endpoint{}, false
	}
	for _, ep := range cl.hooks {
		if ep.name == name {
			return ep, true
		}
	}
	return endpoint{}, false
}

// notifier wakes those waiting for a change: long polls of the feed and
// the webhook deliverer.
type notifier struct {
	mu sync.Mutex
	ch chan struct{}
}

func (n *notifier) changed() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ch == nil {
		n.ch = make(chan struct{})
	}
	return n.ch
}

func (n *notifier) wake() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ch != nil {
		close(n.ch)
		n.ch = nil
	}
}
