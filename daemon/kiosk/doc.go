// Package kiosk serves the official's page at the terminal and its local API:
// embedded files only, live state over Server-Sent Events, and every action a
// same-origin POST with a JSON body.
//
// The API takes PINs, so it defends against the other web pages a kiosk
// browser might open and against DNS rebinding: it listens on loopback, checks
// the Host header exactly, checks Origin (and Sec-Fetch-Site) on every state
// change, requires the page's CSRF token in a header that no form or simple
// cross-origin request can set, and refuses anything but application/json.
//
// Each body is read into one buffer the handler owns, sized from
// Content-Length within a bound, and parsed by the small reader of
// request.go, which knows exactly the shapes the page sends. The sign
// request's PIN is taken as the bytes between its quotes, copied once into
// the buffer handed to the controller, and both buffers are wiped before the
// handler returns; no decoder or growing buffer keeps a copy. What the kiosk
// cannot take — malformed JSON, an unknown or repeated member, a wrong type,
// a bad job id, a PIN that is not 6 to 8 letters or digits, a reject reason
// the Result cannot carry (reason.go) — is a 400 with a catalogue code, never
// a 500; the controller's own errors keep theirs.
//
// The CSRF token lives as long as the process. Each View carries the
// Server's boot id, and GET /api/session (same Host and origin checks, no
// token needed) hands out the current token: a page left open across a
// tekend restart sees the new boot when its event stream comes back and
// fetches the token again, and a state change with an old token is refused
// with err_session_stale, never a bare 403, so the page fetches it then too
// and asks the official to try again.
package kiosk
