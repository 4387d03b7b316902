package admin

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// DefaultSocket is where the packaged tekend listens: systemd makes
// /run/teken for it (RuntimeDirectory=teken in tekend.service).
const DefaultSocket = "/run/teken/tekend.sock"

// Version is the protocol version this package speaks (see the package
// documentation).
const Version = 1

// MaxChunk is the longest chunk of a backup stream.
const MaxChunk = 1 << 20

// maxLine bounds a request, header or trailer line, LF included.
const maxLine = 1024

// Codes of an error answer.
const (
	// CodeRefused: the peer's uid may not use the socket.
	CodeRefused = "refused"
	// CodeBusy: a backup is already running.
	CodeBusy = "busy"
	// CodeBadRequest: the request line is not one of this protocol.
	CodeBadRequest = "bad-request"
	// CodeUnsupportedVersion: the request names another version.
	CodeUnsupportedVersion = "unsupported-version"
	// CodeUnknownCommand: the request names no command the server has.
	CodeUnknownCommand = "unknown-command"
	// CodeFailed: the server could not do what was asked; the message
	// says why.
	CodeFailed = "failed"
)

// cmdBackup asks for a copy of the store.
const cmdBackup = "backup"

// ErrProtocol means the other side sent something this protocol does not
// allow.
var ErrProtocol = errors.New("admin protocol violation")

// protoName is the first word of every line: the protocol and its version.
func protoName(v int) string { return "teken-admin/" + strconv.Itoa(v) }

// request is one parsed request line.
type request struct {
	version int
	command string
}

// formatRequest is the request line for command.
func formatRequest(command string) string { return protoName(Version) + " " + command + "\n" }

// parseRequest reads "teken-admin/V COMMAND". A well-formed line of
// another version parses, so that the server can answer it in its own.
func parseRequest(line string) (request, error) {
	head, command, ok := strings.Cut(line, " ")
	v, vok := strings.CutPrefix(head, "teken-admin/")
	if !ok || !vok {
		return request{}, fmt.Errorf("%w: request %q is not \"teken-admin/%d COMMAND\"", ErrProtocol, clip(line), Version)
	}
	version, err := strconv.Atoi(v)
	if err != nil || version < 1 || version > 999 || strconv.Itoa(version) != v {
		return request{}, fmt.Errorf("%w: bad version %q", ErrProtocol, clip(v))
	}
	if !isWord(command) {
		return request{}, fmt.Errorf("%w: bad command %q", ErrProtocol, clip(command))
	}
	return request{version: version, command: command}, nil
}

// isWord accepts a command or code: 1 to 32 of a-z, 0-9 and '-'.
func isWord(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for _, r := range s {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-' {
			return false
		}
	}
	return true
}

// readLine reads one LF-terminated line of at most maxLine bytes and
// returns it without the LF.
func readLine(r *bufio.Reader) (string, error) {
	var b []byte
	for {
		frag, err := r.ReadSlice('\n')
		b = append(b, frag...)
		if len(b) > maxLine {
			return "", fmt.Errorf("%w: line longer than %d bytes", ErrProtocol, maxLine)
		}
		switch {
		case err == nil:
			return string(b[:len(b)-1]), nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(b) > 0:
			return "", fmt.Errorf("%w: line cut short", io.ErrUnexpectedEOF)
		default:
			return "", err
		}
	}
}

// ServerError is an error answer of the server. errors.Is matches
// ErrRefused for CodeRefused.
type ServerError struct {
	Code    string
	Message string
}

// ErrRefused means the server would not serve this peer (CodeRefused).
var ErrRefused = errors.New("refused by tekend")

func (e *ServerError) Error() string { return "tekend answered " + e.Code + ": " + e.Message }

// Is makes errors.Is(err, ErrRefused) true for a refusal.
func (e *ServerError) Is(target error) bool { return target == ErrRefused && e.Code == CodeRefused }

// formatError is an error line; the message is made one line of
// printable text that fits.
func formatError(code, msg string) string {
	var b strings.Builder
	b.WriteString(protoName(Version) + " error " + code + " ")
	for _, r := range msg {
		if r < 0x20 || r == 0x7f {
			r = ' '
		}
		if b.Len()+utf8.RuneLen(r) > maxLine-1 {
			break
		}
		b.WriteRune(r)
	}
	b.WriteByte('\n')
	return b.String()
}

// parseAnswer reads a header or trailer line: "ok", "done BYTES" or an
// error, which it returns as a *ServerError. word is "ok" or "done" and
// says which is expected; done also returns BYTES.
func parseAnswer(line, word string) (int64, error) {
	rest, ok := strings.CutPrefix(line, protoName(Version)+" ")
	if !ok {
		return 0, fmt.Errorf("%w: answer %q is not of teken-admin/%d", ErrProtocol, clip(line), Version)
	}
	if e, ok := strings.CutPrefix(rest, "error "); ok {
		code, msg, _ := strings.Cut(e, " ")
		if !isWord(code) {
			return 0, fmt.Errorf("%w: error answer %q", ErrProtocol, clip(line))
		}
		return 0, &ServerError{Code: code, Message: msg}
	}
	switch {
	case word == "ok" && rest == "ok":
		return 0, nil
	case word == "done":
		n, ok := strings.CutPrefix(rest, "done ")
		size, err := strconv.ParseInt(n, 10, 64)
		if ok && err == nil && size >= 0 && strconv.FormatInt(size, 10) == n {
			return size, nil
		}
	}
	return 0, fmt.Errorf("%w: answer %q, want %s", ErrProtocol, clip(line), word)
}

// clip shortens what is quoted in an error.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// chunkWriter frames what is written to it as chunks; close ends the
// stream with a chunk of length 0.
type chunkWriter struct{ w io.Writer }

func (c chunkWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := min(len(p), MaxChunk)
		var head [4]byte
		binary.BigEndian.PutUint32(head[:], uint32(k))
		if _, err := c.w.Write(head[:]); err != nil {
			return n, err
		}
		m, err := c.w.Write(p[:k])
		n += m
		if err != nil {
			return n, err
		}
		p = p[k:]
	}
	return n, nil
}

func (c chunkWriter) close() error {
	_, err := c.w.Write([]byte{0, 0, 0, 0})
	return err
}

// chunkReader reads the data of a chunked stream and returns io.EOF at
// its chunk of length 0; what follows (the trailer) is left in r.
type chunkReader struct {
	r    *bufio.Reader
	left int // of the current chunk
	done bool
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if c.done {
		return 0, io.EOF
	}
	if c.left == 0 {
		var head [4]byte
		if _, err := io.ReadFull(c.r, head[:]); err != nil {
			return 0, unexpected(err)
		}
		n := binary.BigEndian.Uint32(head[:])
		if n > MaxChunk {
			return 0, fmt.Errorf("%w: chunk of %d bytes, at most %d", ErrProtocol, n, MaxChunk)
		}
		if n == 0 {
			c.done = true
			return 0, io.EOF
		}
		c.left = int(n)
	}
	k, err := c.r.Read(p[:min(len(p), c.left)])
	c.left -= k
	if err != nil {
		return k, unexpected(err)
	}
	return k, nil
}

// unexpected turns an EOF inside the stream into io.ErrUnexpectedEOF: the
// stream ends only at its chunk of length 0.
func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
