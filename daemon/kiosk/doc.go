// Package kiosk serves the official's page at the terminal and its local API:
// embedded files only, live state over Server-Sent Events, and every action a
// same-origin POST with a JSON body.
//
// The API takes PINs, so it defends against the other web pages a kiosk
// browser might open and against DNS rebinding: it listens on loopback, checks
// the Host header exactly, checks Origin (and Sec-Fetch-Site) on every state
// change, requires the page's CSRF token in a header that no form or simple
// cross-origin request can set, and refuses anything but application/json.
package kiosk
