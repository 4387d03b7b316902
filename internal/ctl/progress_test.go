package ctl

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tekenid/teken/internal/testenv"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestProgress(t *testing.T) {
	t.Run("not a terminal", func(t *testing.T) {
		var b lockedBuffer
		StartProgress(&b, false, "waiting").Stop()
		if b.String() != "" {
			t.Errorf("wrote %q", b.String())
		}
	})
	t.Run("quick operations show nothing", func(t *testing.T) {
		var b lockedBuffer
		StartProgress(&b, true, "waiting").Stop()
		if b.String() != "" {
			t.Errorf("wrote %q", b.String())
		}
	})
	t.Run("slow operations spin and clear the line", func(t *testing.T) {
		var b lockedBuffer
		p := StartProgress(&b, true, "waiting for the receipt")
		err := testenv.WaitFor(context.Background(), 5*time.Second, func() error {
			if strings.Count(b.String(), "waiting for the receipt") < 2 {
				return errors.New("no spinner yet")
			}
			return nil
		})
		p.Stop()
		p.Stop() // a second Stop is harmless
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(b.String(), "\r") || !strings.HasSuffix(b.String(), "\r\033[K") {
			t.Errorf("output %q", b.String())
		}
	})
}
