// Package api is the wire contract between the terminal and the central
// letter system: messages, topics, validation and its limits, signed job
// envelopes (JWS sign and verify) and the JSON Schemas.
//
// Messages to the terminal (Job, Cancel, ResultAck, ResultAcks,
// SyncRequest) travel as JWS compact serializations signed by a dispatcher
// key; Signer makes them and Verifier checks them before anything is
// stored, refusing with a *RefusalError whose ReasonCode goes into the
// Receipt. Messages from the terminal (Receipt, Result, Status, Sync) are
// plain JSON, made with Encode and read with the Decode functions.
//
// Every message carries "v". Signed payloads refuse unknown fields, because
// a terminal must never ignore an instruction it does not understand;
// messages from terminals tolerate them, so a newer terminal can add
// information without breaking the central system. docs/PROTOCOL.md is the
// reference for integrators; the JSON Schemas are embedded (Schema).
//
// The contract is bytes and rules only: it imports no MQTT client, no
// store and no card. Carrying the messages is the transport's job
// (package transport, the only user of paho), making and checking the
// signatures inside a Result is the formats' job (signature/cms,
// signature/pades). A central system in Go uses this package with
// transport.Dispatcher; one in another language reads docs/PROTOCOL.md and
// api/schema.
package api
