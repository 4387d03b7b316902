// Package api is the wire contract between the terminal and the central
// letter system — messages, topics, validation, signed job envelopes — and
// the MQTT transport.
//
// Messages to the terminal (Job, Cancel, ResultAck) travel as JWS compact
// serializations signed by a dispatcher key; Signer makes them and Verifier
// checks them before anything is stored, refusing with a *RefusalError whose
// ReasonCode goes into the Receipt. Messages from the terminal (Receipt,
// Result, Status, Sync) are plain JSON, made with Encode and read with the
// Decode functions.
//
// Every message carries "v". Signed payloads refuse unknown fields, because
// a terminal must never ignore an instruction it does not understand;
// messages from terminals tolerate them, so a newer terminal can add
// information without breaking the central system. docs/PROTOCOL.md is the
// reference for integrators; the JSON Schemas are embedded (Schema).
package api
