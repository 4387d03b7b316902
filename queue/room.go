package queue

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	berrors "go.etcd.io/bbolt/errors"
)

// allocSize is how far bbolt grows the file ahead of its data once the
// file is larger than that (db.AllocSize; bbolt's default is 16 MiB).
//
// On Linux bbolt grows the file with ftruncate, which on ext4, xfs and
// tmpfs makes a hole: only the pages a commit writes take disk blocks. But
// the step still costs room in two ways. bbolt refuses to allocate a page
// when the data plus one step would pass MaxSize, so the last step of the
// cap (16 MiB by default) is never usable by anything, the reserve for
// draining included; and on a filesystem without holes (vfat or exfat on
// an SD card or a USB stick) the step is allocated at once, so a freed
// megabyte or two on a full disk is swallowed by the first growth and the
// store cannot drain. With 1 MiB, a little freed space is enough for the
// growth and the pages a drain writes (a transition rewrites one job
// record; a delivery or a prune a few small pages). The price is one
// ftruncate and fsync for every megabyte the file grows, next to the
// fdatasync that every commit makes anyway: at a terminal's rate of
// letters, a few a minute of a few megabytes at most, nothing.
// InitialMmapSize stays 0: a mapping takes no disk, and with it the step
// is bounded either way — while the mapping is at most allocSize bbolt
// grows the file to the mapping's size (a power of two, at most 1 MiB),
// past that by what a commit needs plus allocSize.
const allocSize = 1 << 20

// roomCause says why a failed commit found no room — the size cap or a
// full filesystem — or "" when err is something else. A full filesystem
// shows as ENOSPC or EDQUOT, wrapped by bbolt as the *fs.PathError of a
// write or fdatasync, or flattened into text ("file resize error: %s",
// "mmap allocate error: %s"), which is matched by the errno's message.
func roomCause(err error, limit, maxSize int) string {
	if errors.Is(err, berrors.ErrMaxSizeReached) {
		if limit > 0 && limit < maxSize {
			return fmt.Sprintf("size cap reached (new jobs may use %d of its %d bytes, the rest is kept for draining)", limit, maxSize)
		}
		return fmt.Sprintf("size cap reached (%d bytes)", limit)
	}
	if diskFull(err) {
		return "filesystem full: " + err.Error()
	}
	return ""
}

var roomErrnos = []syscall.Errno{syscall.ENOSPC, syscall.EDQUOT}

// diskFull reports whether err is a filesystem out of space or quota.
func diskFull(err error) bool {
	if err == nil {
		return false
	}
	msg := err.Error()
	for _, e := range roomErrnos {
		if errors.Is(err, e) || strings.Contains(msg, e.Error()) {
			return true
		}
	}
	return false
}

// isFull reports whether err means there was no room: the size cap, a
// full filesystem, or ErrFull that says either.
func isFull(err error) bool {
	return errors.Is(err, ErrFull) || errors.Is(err, berrors.ErrMaxSizeReached) || diskFull(err)
}

// room is whether the store has room to write, as the commits found it.
// The store is full while the last attempt to store a new job was refused
// for lack of room (inserts), or the last write of any other kind was
// (writes). A refused insert is cleared only by an insert that stores a
// job, not by a transition that still fits in the reserve, so the state
// does not flap with every write of the other kind; a write that stores
// no job clears only writes. The flags change with each commit; full is
// what the store says, published once per commit round (publishRoom), so
// that a write that fits and the repair after it that does not are one
// attempt, not a change back and forth.
type room struct {
	mu      sync.Mutex
	inserts bool // the last insert found no room
	writes  bool // the last other write found no room
	cause   string
	since   time.Time

	full     atomic.Bool   // published
	refusals atomic.Uint64 // commits refused for lack of room, since Open
}

// refused records a commit that found no room.
func (s *Store) refused(insert bool, cause string) {
	s.room.refusals.Add(1)
	s.room.mu.Lock()
	defer s.room.mu.Unlock()
	if insert {
		s.room.inserts = true
	} else {
		s.room.writes = true
	}
	s.room.cause = cause
}

// fitted records a commit that went through; created says it stored a new
// job, which shows room for any write.
func (s *Store) fitted(created bool) {
	s.room.mu.Lock()
	defer s.room.mu.Unlock()
	if created {
		s.room.inserts = false
	}
	s.room.writes = false
}

// publishRoom makes the room state of the last commit round what Full
// says, and logs it once per change.
func (s *Store) publishRoom() {
	s.room.mu.Lock()
	full := s.room.inserts || s.room.writes
	cause, since := s.room.cause, s.room.since
	was := s.room.full.Load()
	if full && !was {
		s.room.since = s.opts.Now()
	}
	if !full {
		s.room.cause = ""
	}
	s.room.full.Store(full)
	s.room.mu.Unlock()
	switch {
	case full && !was:
		s.log.Error("store full: writes are refused until there is room; new jobs are not acknowledged meanwhile",
			"cause", cause)
	case !full && was:
		s.log.Info("store has room again", "full_for", s.opts.Now().Sub(since).Round(time.Millisecond))
		s.rearmSweep() // a sweep that found no room runs again now
	}
}

// Full reports whether the store is refusing writes for lack of room: its
// size cap (Options.MaxSize) or a full filesystem. While it is, Insert
// fails with ErrFull, and so may other writes; Stats.FullCause says why.
// It turns false again once a write of the kind refused goes through: for
// a refused Insert, an Insert that stores a job.
func (s *Store) Full() bool { return s.room.full.Load() }

// fullState is the published state with its cause and start.
func (s *Store) fullState() (full bool, cause string, since time.Time) {
	s.room.mu.Lock()
	defer s.room.mu.Unlock()
	if !s.room.full.Load() {
		return false, "", time.Time{}
	}
	return true, s.room.cause, s.room.since
}
