package kiosk

import (
	"errors"
	"fmt"
	"io"
	"net/http"
)

// Bounds of the page's requests.
const (
	// maxBody bounds the body of every POST but the sign request.
	maxBody = 64 << 10
	// maxJobIDs is the most letters one sign request may name; the daemon
	// refuses a batch over its own signing.max_batch (at most 200) with
	// CodeBatchTooLarge before this matters.
	maxJobIDs = 256
	// maxJobIDLen bounds a job id: the API's ids are ULIDs (26 characters)
	// or UUIDs (36).
	maxJobIDLen = 64
	// maxSignBody bounds the sign request: maxJobIDs quoted ids with their
	// commas, the PIN and the flag, with room for whitespace.
	maxSignBody = maxJobIDs*(maxJobIDLen+3) + 1024
	// minPIN and maxPIN are the PIV PIN lengths (SP 800-73-4 Part 2
	// §3.1.1: 6 to 8 bytes).
	minPIN, maxPIN = 6, 8
)

// requestError is a request the kiosk refuses with 400 and a catalogue
// code. Its text is for the log: it names offsets and lengths, never what
// the client sent, which might hold a PIN.
type requestError struct {
	code   string
	params map[string]string
	msg    string
	// unicode: a well-formed JSON string that is not valid Unicode (bad
	// UTF-8, a lone surrogate escape), which the reject handler names.
	unicode bool
}

func (e *requestError) Error() string { return e.msg }

func badRequest(format string, args ...any) *requestError {
	return &requestError{code: CodeBadRequest, msg: fmt.Sprintf(format, args...)}
}

func badUnicode(msg string) *requestError {
	return &requestError{code: CodeBadRequest, msg: msg, unicode: true}
}

// readBody reads the whole request body into one buffer of its own, sized
// from Content-Length when the client sent one (refused above limit) and
// to limit otherwise, so no growing buffer leaves copies behind. It returns
// the bytes read; buf is the whole buffer, returned even on error, for the
// caller to wipe. The only other copy is net/http's read buffer of the
// connection, which the kiosk cannot reach.
func readBody(w http.ResponseWriter, r *http.Request, limit int) (data, buf []byte, err error) {
	if r.ContentLength > int64(limit) {
		return nil, nil, badRequest("body of %d bytes, limit %d", r.ContentLength, limit)
	}
	size := limit
	if r.ContentLength >= 0 {
		size = int(r.ContentLength)
	}
	buf = make([]byte, size)
	body := http.MaxBytesReader(w, r.Body, int64(limit))
	n, err := io.ReadFull(body, buf)
	switch {
	case err == nil:
		// The buffer is full: nothing may follow.
		var probe [1]byte
		m, perr := io.ReadFull(body, probe[:])
		probe[0] = 0
		if m != 0 || !errors.Is(perr, io.EOF) {
			return nil, buf, badRequest("body longer than %d bytes", size)
		}
	case (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)) && r.ContentLength < 0:
		// A body of unknown length ended within the limit.
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return nil, buf, badRequest("body ended after %d of %d bytes", n, size)
	default:
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, buf, badRequest("body longer than %d bytes", limit)
		}
		return nil, buf, badRequest("read body: %v", err)
	}
	return buf[:n], buf, nil
}

// wipe zeroes the whole of b, to its capacity.
func wipe(b []byte) { clear(b[:cap(b)]) }

// signRequest is the body of POST /api/sign. PIN aliases the request
// buffer: the handler copies it once for the controller and wipes both.
type signRequest struct {
	JobIDs      []string
	PIN         []byte
	ConfirmLast bool
}

// parseSignRequest reads exactly {"job_ids": [string…], "pin": string,
// "confirm_last_attempt": bool}, members in any order, the flag optional,
// nothing else: no unknown, repeated or null member, no trailing data. It
// is written out instead of using encoding/json so that the PIN is never
// copied: it is taken as the raw bytes between its quotes, which must be
// 6 to 8 letters or digits (so no escape can hide in it). The job ids are
// 1 to maxJobIDs distinct ids of letters, digits, '.', '_' and '-'.
func parseSignRequest(b []byte) (signRequest, error) {
	var req signRequest
	var seenIDs, seenPIN, seenConfirm bool
	err := parseObject(b, func(p *parser, key []byte) error {
		switch string(key) {
		case "job_ids":
			if seenIDs {
				return badRequest("job_ids given twice")
			}
			seenIDs = true
			ids, err := p.jobIDs()
			req.JobIDs = ids
			return err
		case "pin":
			if seenPIN {
				return badRequest("pin given twice")
			}
			seenPIN = true
			raw, escaped, err := p.rawString()
			if err != nil {
				return err
			}
			if escaped || !validPIN(raw) {
				return &requestError{code: CodePINFormat, msg: "pin: want 6 to 8 letters or digits"}
			}
			req.PIN = raw
			return nil
		case "confirm_last_attempt":
			if seenConfirm {
				return badRequest("confirm_last_attempt given twice")
			}
			seenConfirm = true
			v, err := p.boolean()
			req.ConfirmLast = v
			return err
		}
		return p.errorf("unknown member")
	})
	if err != nil {
		return signRequest{}, err
	}
	switch {
	case !seenPIN:
		return signRequest{}, &requestError{code: CodePINFormat, msg: "no pin"}
	case len(req.JobIDs) == 0:
		return signRequest{}, badRequest("no jobs selected")
	}
	return req, nil
}

func validPIN(pin []byte) bool {
	if len(pin) < minPIN || len(pin) > maxPIN {
		return false
	}
	for _, c := range pin {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

// validJobID reports whether id can name a job: 1 to maxJobIDLen letters,
// digits, '.', '_' or '-'.
func validJobID(id string) bool {
	if id == "" || len(id) > maxJobIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// rejectRequest is the body of POST /api/reject, its reason decoded but not
// yet normalised.
type rejectRequest struct {
	JobID  string
	Reason string
}

// parseRejectRequest reads exactly {"job_id": string, "reason": string},
// the reason optional.
func parseRejectRequest(b []byte) (rejectRequest, error) {
	var req rejectRequest
	var seenID, seenReason bool
	err := parseObject(b, func(p *parser, key []byte) error {
		switch string(key) {
		case "job_id":
			if seenID {
				return badRequest("job_id given twice")
			}
			seenID = true
			s, err := p.str()
			req.JobID = s
			return err
		case "reason":
			if seenReason {
				return badRequest("reason given twice")
			}
			seenReason = true
			s, err := p.str()
			if re := (*requestError)(nil); errors.As(err, &re) && re.unicode {
				return &requestError{code: CodeReasonInvalid, msg: "reason: " + re.msg}
			}
			req.Reason = s
			return err
		}
		return p.errorf("unknown member")
	})
	if err != nil {
		return rejectRequest{}, err
	}
	if !validJobID(req.JobID) {
		return rejectRequest{}, badRequest("want a job_id")
	}
	return req, nil
}

// parseLanguageRequest reads exactly {"lang": string}.
func parseLanguageRequest(b []byte) (string, error) {
	var lang string
	var seen bool
	err := parseObject(b, func(p *parser, key []byte) error {
		if string(key) != "lang" {
			return p.errorf("unknown member")
		}
		if seen {
			return badRequest("lang given twice")
		}
		seen = true
		s, err := p.str()
		lang = s
		return err
	})
	if err != nil {
		return "", err
	}
	if !seen {
		return "", badRequest("no lang")
	}
	return lang, nil
}

// parseEmptyObject reads exactly {}.
func parseEmptyObject(b []byte) error {
	return parseObject(b, func(p *parser, _ []byte) error {
		return p.errorf("unknown member")
	})
}
