package gateway

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/tekenid/teken/api"
)

// client is one letter system with its keys' hashes and what it may use.
type client struct {
	id        string
	terminals []string // ids, prefix-* patterns, "*"; groups expanded
	hooks     []endpoint
}

type endpoint struct {
	name   string
	url    string
	secret []byte
}

// allows reports whether the client may send letters to terminal.
func (c *client) allows(terminal string) bool {
	for _, p := range c.terminals {
		switch {
		case p == "*" || p == terminal:
			return true
		case strings.HasSuffix(p, "-*") && strings.HasPrefix(terminal, strings.TrimSuffix(p, "*")):
			return true
		}
	}
	return false
}

// validTerminalPattern: a terminal id, "prefix-*" or "*".
func validTerminalPattern(p string) bool {
	if p == "*" {
		return true
	}
	if prefix, ok := strings.CutSuffix(p, "-*"); ok {
		return api.ValidTerminalID(prefix) == nil
	}
	return api.ValidTerminalID(p) == nil
}

// keyring finds the client of a presented API key by the key's hash:
// the configuration holds hashes only, and a hash of a random 256-bit key
// tells an attacker who reads it nothing usable.
type keyring struct {
	byHash map[string]*client
}

func (k *keyring) authenticate(r *http.Request) *client {
	auth := r.Header.Get("Authorization")
	key, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok || key == "" || len(key) > 256 {
		return nil
	}
	sum := sha256.Sum256([]byte(key))
	return k.byHash[hex.EncodeToString(sum[:])]
}

// NewAPIKey makes a key for a client and the hash its configuration
// holds (tekengw key).
func NewAPIKey() (key, hash string) {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24)
	key = "tk_" + base64.RawURLEncoding.EncodeToString(b[:])
	sum := sha256.Sum256([]byte(key))
	return key, hex.EncodeToString(sum[:])
}

// fleet is every terminal's last status, as the broker keeps it
// retained: each gateway instance sees all of them.
type fleet struct {
	mu sync.Mutex
	m  map[string]terminalStatus
}

type terminalStatus struct {
	api.Status
	SeenAt time.Time
}

func (f *fleet) update(s *api.Status, now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m == nil {
		f.m = map[string]terminalStatus{}
	}
	f.m[s.Terminal] = terminalStatus{Status: *s, SeenAt: now}
}

// status is a terminal's last status, if one came.
func (f *fleet) status(terminal string) (api.Status, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.m[terminal]
	return s.Status, ok
}

func (f *fleet) online(terminal string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.m[terminal].State == api.StateOnline
}

func (f *fleet) all() []terminalStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]terminalStatus, 0, len(f.m))
	for _, s := range f.m {
		out = append(out, s)
	}
	return out
}
