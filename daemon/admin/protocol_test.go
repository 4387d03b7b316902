package admin

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

func TestParseRequest(t *testing.T) {
	for _, tc := range []struct {
		line    string
		want    request
		wantErr bool
	}{
		{line: "teken-admin/1 backup", want: request{1, "backup"}},
		{line: "teken-admin/2 backup", want: request{2, "backup"}},
		{line: "teken-admin/1 future-thing2", want: request{1, "future-thing2"}},
		{line: "teken-admin/1", wantErr: true},
		{line: "teken-admin/1 ", wantErr: true},
		{line: "teken-admin/1 Backup", wantErr: true},
		{line: "teken-admin/1 backup extra", wantErr: true},
		{line: "teken-admin/01 backup", wantErr: true},
		{line: "teken-admin/0 backup", wantErr: true},
		{line: "teken-admin/1000 backup", wantErr: true},
		{line: "teken-admin/-1 backup", wantErr: true},
		{line: "teken-admin/x backup", wantErr: true},
		{line: "TEKEN-ADMIN/1 backup", wantErr: true},
		{line: "GET / HTTP/1.1", wantErr: true},
		{line: "teken-admin/1 backup\r", wantErr: true},
		{line: "teken-admin/1 " + strings.Repeat("a", 33), wantErr: true},
		{line: "", wantErr: true},
	} {
		got, err := parseRequest(tc.line)
		if tc.wantErr {
			if !errors.Is(err, ErrProtocol) {
				t.Errorf("parseRequest(%q) = %+v, %v; want ErrProtocol", tc.line, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("parseRequest(%q) = %+v, %v; want %+v", tc.line, got, err, tc.want)
		}
	}
}

func TestParseAnswer(t *testing.T) {
	for _, tc := range []struct {
		line, word string
		size       int64
		code       string // a *ServerError with this code
		protocol   bool   // ErrProtocol
	}{
		{line: "teken-admin/1 ok", word: "ok"},
		{line: "teken-admin/1 done 0", word: "done", size: 0},
		{line: "teken-admin/1 done 1048576", word: "done", size: 1 << 20},
		{line: "teken-admin/1 error busy a backup is already running", word: "ok", code: CodeBusy},
		{line: "teken-admin/1 error refused uid 1000 may not", word: "ok", code: CodeRefused},
		{line: "teken-admin/1 error failed", word: "done", code: CodeFailed},
		{line: "teken-admin/1 ok", word: "done", protocol: true},
		{line: "teken-admin/1 done 12", word: "ok", protocol: true},
		{line: "teken-admin/1 done -1", word: "done", protocol: true},
		{line: "teken-admin/1 done 012", word: "done", protocol: true},
		{line: "teken-admin/1 done 99999999999999999999", word: "done", protocol: true},
		{line: "teken-admin/1 done", word: "done", protocol: true},
		{line: "teken-admin/2 ok", word: "ok", protocol: true},
		{line: "teken-admin/1 error", word: "ok", protocol: true},
		{line: "teken-admin/1 error BAD code", word: "ok", protocol: true},
		{line: "SQLite format 3", word: "ok", protocol: true},
	} {
		size, err := parseAnswer(tc.line, tc.word)
		var se *ServerError
		switch {
		case tc.code != "":
			if !errors.As(err, &se) || se.Code != tc.code {
				t.Errorf("parseAnswer(%q) = %v; want a %s answer", tc.line, err, tc.code)
			}
		case tc.protocol:
			if !errors.Is(err, ErrProtocol) {
				t.Errorf("parseAnswer(%q) = %d, %v; want ErrProtocol", tc.line, size, err)
			}
		case err != nil || size != tc.size:
			t.Errorf("parseAnswer(%q) = %d, %v; want %d", tc.line, size, err, tc.size)
		}
	}
	if err := (&ServerError{Code: CodeRefused}); !errors.Is(err, ErrRefused) {
		t.Error("a refusal does not match ErrRefused")
	}
	if err := (&ServerError{Code: CodeBusy}); errors.Is(err, ErrRefused) {
		t.Error("busy matches ErrRefused")
	}
}

// An error message becomes one line that fits, whatever it holds.
func TestFormatErrorIsOneLine(t *testing.T) {
	for _, msg := range []string{"", "plain", "two\nlines\r\n", strings.Repeat("é", 2000), "\x00\x7f\xff"} {
		line := formatError(CodeFailed, msg)
		if len(line) > maxLine || strings.Count(line, "\n") != 1 || !strings.HasSuffix(line, "\n") {
			t.Errorf("formatError(%.20q) = %d bytes, %d LF", msg, len(line), strings.Count(line, "\n"))
			continue
		}
		r := bufio.NewReader(strings.NewReader(line))
		got, err := readLine(r)
		if err != nil {
			t.Fatal(err)
		}
		var se *ServerError
		if _, err := parseAnswer(got, "ok"); !errors.As(err, &se) || se.Code != CodeFailed {
			t.Errorf("formatError(%.20q) reads back as %v", msg, err)
		}
	}
}

// answer builds a server's answer to a backup request carrying data.
func answer(t testing.TB, data []byte, trailer string) []byte {
	t.Helper()
	var b bytes.Buffer
	b.WriteString("teken-admin/1 ok\n")
	cw := chunkWriter{w: &b}
	// Written in pieces of varying sizes, one above MaxChunk, as the
	// store writes pages and copies.
	for rest, k := data, 1; len(rest) > 0; k = k*7 + 3 {
		n := min(len(rest), k)
		if _, err := cw.Write(rest[:n]); err != nil {
			t.Fatal(err)
		}
		rest = rest[n:]
	}
	if err := cw.close(); err != nil {
		t.Fatal(err)
	}
	if trailer == "" {
		trailer = fmt.Sprintf("teken-admin/1 done %d\n", len(data))
	}
	b.WriteString(trailer)
	return b.Bytes()
}

func TestChunkedStreamRoundTrip(t *testing.T) {
	for _, size := range []int{0, 1, 4096, MaxChunk, MaxChunk + 1, 3*MaxChunk + 17} {
		data := make([]byte, size)
		_, _ = rand.Read(data)
		var got bytes.Buffer
		n, err := readBackup(bufio.NewReader(bytes.NewReader(answer(t, data, ""))), &got)
		if err != nil || n != int64(size) || !bytes.Equal(got.Bytes(), data) {
			t.Errorf("size %d: got %d bytes (%d buffered), %v", size, n, got.Len(), err)
		}
	}
}

// A stream that does not arrive whole is never taken for a backup.
func TestReadBackupRefusesBrokenStreams(t *testing.T) {
	data := bytes.Repeat([]byte("page"), 5000)
	whole := answer(t, data, "")
	endAt := len(whole) - len(fmt.Sprintf("teken-admin/1 done %d\n", len(data)))
	for _, tc := range []struct {
		name   string
		stream []byte
		is     error
	}{
		{"empty", nil, io.ErrUnexpectedEOF},
		{"header cut", whole[:10], io.ErrUnexpectedEOF},
		{"mid chunk", whole[:len(whole)/2], io.ErrUnexpectedEOF},
		{"no end chunk", whole[:endAt-4], io.ErrUnexpectedEOF},
		{"no trailer", whole[:endAt], io.ErrUnexpectedEOF},
		{"trailer cut", whole[:len(whole)-1], io.ErrUnexpectedEOF},
		{"size differs", answer(t, data, "teken-admin/1 done 12\n"), ErrProtocol},
		{"failed on the way", answer(t, data, "teken-admin/1 error failed read page 3: input/output error\n"), nil},
		{"chunk too long", append([]byte("teken-admin/1 ok\n"), 0, 0x10, 0, 1), ErrProtocol},
		{"endless header", bytes.Repeat([]byte("a"), 4*maxLine), ErrProtocol},
		{"refused", []byte("teken-admin/1 error refused uid 1000 may not use this socket\n"), ErrRefused},
	} {
		var got bytes.Buffer
		_, err := readBackup(bufio.NewReaderSize(bytes.NewReader(tc.stream), 64), &got)
		if err == nil {
			t.Errorf("%s: accepted", tc.name)
			continue
		}
		if tc.is != nil && !errors.Is(err, tc.is) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.is)
		}
		if tc.is == nil {
			var se *ServerError
			if !errors.As(err, &se) || se.Code != CodeFailed {
				t.Errorf("%s: %v, want a failed answer", tc.name, err)
			}
		}
	}
}

// The server parses whatever a local process sends it.
func FuzzParseRequest(f *testing.F) {
	f.Add("teken-admin/1 backup")
	f.Add("teken-admin/999 x")
	f.Add("teken-admin/1")
	f.Add("")
	f.Fuzz(func(t *testing.T, line string) {
		req, err := parseRequest(line)
		if err != nil {
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("error %v is not ErrProtocol", err)
			}
			return
		}
		if got := strings.TrimSuffix(formatRequest(req.command), "\n"); req.version == Version && got != line {
			t.Fatalf("parsed %q as %+v, which formats as %q", line, req, got)
		}
	})
}

// The client reads whatever listens at the socket path: it must keep to
// its bounds and never return a copy that did not arrive whole.
func FuzzReadBackup(f *testing.F) {
	f.Add(answer(f, []byte("bbolt"), ""))
	f.Add(answer(f, nil, ""))
	f.Add(answer(f, []byte("x"), "teken-admin/1 error failed disk\n"))
	f.Add([]byte("teken-admin/1 ok\n\xff\xff\xff\xff"))
	f.Add([]byte("teken-admin/1 error busy a backup is already running\n"))
	f.Fuzz(func(t *testing.T, stream []byte) {
		var got bytes.Buffer
		n, err := readBackup(bufio.NewReaderSize(bytes.NewReader(stream), 64), &got)
		if n != int64(got.Len()) {
			t.Fatalf("returned %d, wrote %d", n, got.Len())
		}
		if err != nil {
			return
		}
		// Accepted: the stream said ok, carried n bytes and said done n.
		if !bytes.HasPrefix(stream, []byte("teken-admin/1 ok\n")) || !bytes.Contains(stream, fmt.Appendf(nil, "\x00\x00\x00\x00teken-admin/1 done %d\n", n)) {
			t.Fatalf("accepted %q", stream)
		}
	})
}
