// Package api is the wire contract between the terminal and the central
// letter system — messages, topics, validation, signed job envelopes — and
// the MQTT transport.
package api
