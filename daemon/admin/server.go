package admin

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Store is what the server copies; *queue.Store is one.
type Store interface {
	// Backup writes a consistent copy of the whole store file to w and
	// returns the bytes written.
	Backup(ctx context.Context, w io.Writer) (int64, error)
}

// DefaultIdleTimeout bounds each read of a request and each write of an
// answer. It is short: while a backup waits on a client that does not
// read, its read transaction stays open (see the package documentation).
const DefaultIdleTimeout = 5 * time.Second

// SocketMode is the admin socket's permission: tekend's user and group.
const SocketMode fs.FileMode = 0o660

// ServerOptions configure a Server.
type ServerOptions struct {
	// Store is copied by backup; required.
	Store Store
	// Allow says whether a peer of uid may use the socket; nil means
	// RootOrSelf.
	Allow func(uid uint32) bool
	// Logger receives the server's logs; nil means slog.Default().
	Logger *slog.Logger
	// IdleTimeout: zero means DefaultIdleTimeout.
	IdleTimeout time.Duration
}

// Server serves the admin socket. Listen opens it, Serve answers until its
// context ends or Close is called, Close stops it and waits for every
// connection to end.
type Server struct {
	ln   *net.UnixListener
	path string
	opts ServerOptions
	log  *slog.Logger

	ctx    context.Context // ends at Close: every connection then ends
	cancel context.CancelFunc
	conns  sync.WaitGroup
	busy   atomic.Bool // a backup is running
}

// Listen creates the socket at path, mode SocketMode, and removes a
// socket a tekend left behind (nobody answers on it). It fails if another
// server answers at path or path is something else than a socket.
func Listen(path string, opts ServerOptions) (*Server, error) {
	if opts.Store == nil {
		return nil, errors.New("admin socket: no store to serve")
	}
	if opts.Allow == nil {
		opts.Allow = RootOrSelf
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = DefaultIdleTimeout
	}
	ln, err := listenUnix(path)
	if err != nil {
		return nil, err
	}
	// The socket is made with the process's umask; the mode is what
	// admits tekend's group to connect (and SO_PEERCRED then decides).
	if err := os.Chmod(path, SocketMode); err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	s := &Server{ln: ln, path: path, opts: opts, log: opts.Logger.With("socket", path)}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

func listenUnix(path string) (*net.UnixListener, error) {
	addr := &net.UnixAddr{Name: path, Net: "unix"}
	ln, err := net.ListenUnix("unix", addr)
	if !errors.Is(err, syscall.EADDRINUSE) {
		if err != nil {
			return nil, fmt.Errorf("admin socket: %w", err)
		}
		return ln, nil
	}
	c, dialErr := net.DialTimeout("unix", path, time.Second)
	if dialErr == nil {
		_ = c.Close()
		return nil, fmt.Errorf("admin socket %s: another tekend answers on it", path)
	}
	fi, statErr := os.Lstat(path)
	if !errors.Is(dialErr, syscall.ECONNREFUSED) || statErr != nil || fi.Mode().Type() != fs.ModeSocket {
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	if err := os.Remove(path); err != nil {
		return nil, fmt.Errorf("admin socket: remove the one left behind: %w", err)
	}
	ln, err = net.ListenUnix("unix", addr)
	if err != nil {
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	return ln, nil
}

// Path is the socket's path.
func (s *Server) Path() string { return s.path }

// Serve accepts connections until ctx ends or Close is called, and returns
// once every connection it accepted has ended. It returns nil then; it
// fails only if the socket does.
func (s *Server) Serve(ctx context.Context) error {
	stop := context.AfterFunc(ctx, s.shutdown)
	defer stop()
	defer s.conns.Wait()
	var backoff time.Duration
	for {
		c, err := s.ln.AcceptUnix()
		if s.ctx.Err() != nil {
			if c != nil {
				_ = c.Close()
			}
			return nil
		}
		if err != nil {
			var errno syscall.Errno
			if !errors.As(err, &errno) || (errno != syscall.EMFILE && errno != syscall.ENFILE && errno != syscall.ENOBUFS && errno != syscall.ENOMEM) {
				return fmt.Errorf("admin socket %s: %w", s.path, err)
			}
			// Out of descriptors or memory for now: the terminal's
			// work matters more than this socket, which waits.
			backoff = min(max(2*backoff, 50*time.Millisecond), time.Second)
			s.log.Warn("admin socket cannot accept; retrying", "err", err, "in", backoff)
			select {
			case <-time.After(backoff):
			case <-s.ctx.Done():
			}
			continue
		}
		backoff = 0
		s.conns.Add(1)
		go func() {
			defer s.conns.Done()
			s.handle(c)
		}()
	}
}

// shutdown stops accepting and ends every connection's I/O.
func (s *Server) shutdown() {
	s.cancel()
	_ = s.ln.Close() // also removes the socket file
}

// Close stops the server, and waits, until ctx ends, for the connections
// to end.
func (s *Server) Close(ctx context.Context) error {
	s.shutdown()
	done := make(chan struct{})
	go func() { s.conns.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("close admin socket %s: %w", s.path, ctx.Err())
	}
}

// handle answers one connection: who it is, then its one request.
func (s *Server) handle(c *net.UnixConn) {
	defer c.Close()
	// Closing, not a deadline, ends the connection at Close: every write
	// sets a deadline of its own.
	stop := context.AfterFunc(s.ctx, func() { _ = c.Close() })
	defer stop()
	w := bufio.NewWriterSize(deadlineWriter{c: c, idle: s.opts.IdleTimeout}, 64<<10)
	p, err := peerOf(c)
	if err != nil {
		s.log.Warn("admin connection without credentials", "err", err)
		return
	}
	log := s.log.With("uid", p.uid, "pid", p.pid)
	if !s.opts.Allow(p.uid) {
		log.Warn("admin connection refused: uid not allowed")
		s.answerError(w, CodeRefused, fmt.Sprintf("uid %d may not use this socket: run as root or as tekend's user", p.uid))
		return
	}
	_ = c.SetReadDeadline(time.Now().Add(s.opts.IdleTimeout))
	line, err := readLine(bufio.NewReaderSize(c, maxLine))
	if err != nil {
		log.Info("admin request unreadable", "err", err)
		s.answerError(w, CodeBadRequest, err.Error())
		return
	}
	req, err := parseRequest(line)
	switch {
	case err != nil:
		s.answerError(w, CodeBadRequest, err.Error())
	case req.version != Version:
		s.answerError(w, CodeUnsupportedVersion, fmt.Sprintf("this tekend speaks teken-admin/%d", Version))
	case req.command == cmdBackup:
		s.backup(w, log)
	default:
		s.answerError(w, CodeUnknownCommand, fmt.Sprintf("no command %q", req.command))
	}
}

func (s *Server) answerError(w *bufio.Writer, code, msg string) {
	_, _ = w.WriteString(formatError(code, msg))
	_ = w.Flush()
}

// backup streams the store, one backup at a time.
func (s *Server) backup(w *bufio.Writer, log *slog.Logger) {
	if !s.busy.CompareAndSwap(false, true) {
		s.answerError(w, CodeBusy, "a backup is already running")
		return
	}
	defer s.busy.Store(false)
	start := time.Now()
	log.Info("backup started")
	if _, err := w.WriteString(protoName(Version) + " ok\n"); err != nil {
		return
	}
	chunks := chunkWriter{w: w}
	n, err := s.opts.Store.Backup(s.ctx, chunks)
	if err != nil {
		// The client may be gone; if not, it learns the copy is no good.
		_ = chunks.close()
		s.answerError(w, CodeFailed, err.Error())
		log.Error("backup failed", "bytes", n, "err", err)
		return
	}
	_ = chunks.close()
	_, _ = fmt.Fprintf(w, "%s done %d\n", protoName(Version), n)
	if err := w.Flush(); err != nil {
		log.Error("backup failed", "bytes", n, "err", err)
		return
	}
	log.Info("backup sent", "bytes", n, "took", time.Since(start).Round(time.Millisecond))
}

// deadlineWriter gives each write to c idle to go through: a client that
// stops reading fails the backup instead of holding its transaction open.
type deadlineWriter struct {
	c    *net.UnixConn
	idle time.Duration
}

func (d deadlineWriter) Write(p []byte) (int, error) {
	if err := d.c.SetWriteDeadline(time.Now().Add(d.idle)); err != nil {
		return 0, err
	}
	return d.c.Write(p)
}
