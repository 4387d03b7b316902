package ctl

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// Progress shows a spinner with a label on a terminal's stderr once an
// operation has taken longer than a second.
type Progress struct {
	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// StartProgress starts a spinner on w after a second; when enabled is false
// (w is not a terminal) it shows nothing. Stop ends it.
func StartProgress(w io.Writer, enabled bool, label string) *Progress {
	p := &Progress{stop: make(chan struct{}), done: make(chan struct{})}
	if !enabled {
		close(p.done)
		return p
	}
	go func() {
		defer close(p.done)
		delay := time.NewTimer(time.Second)
		defer delay.Stop()
		select {
		case <-p.stop:
			return
		case <-delay.C:
		}
		frames := []rune(`|/-\`)
		tick := time.NewTicker(150 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			fmt.Fprintf(w, "\r%c %s", frames[i%len(frames)], label)
			select {
			case <-p.stop:
				fmt.Fprintf(w, "\r\033[K")
				return
			case <-tick.C:
			}
		}
	}()
	return p
}

// Stop ends the spinner, clears its line and waits for it.
func (p *Progress) Stop() {
	p.once.Do(func() { close(p.stop) })
	<-p.done
}
