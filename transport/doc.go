// Package transport carries the wire contract (package api) over MQTT
// 3.1.1 with github.com/eclipse/paho.mqtt.golang; it is the only package
// of Teken that imports paho.
//
// Both halves live here, on one session type, so they cannot drift apart:
//
//   - Terminal is tekend's client: a persistent session (CleanSession=false)
//     under a stable client id, QoS 1 subscriptions to the terminal's jobs
//     and control topics renewed after every connect, messages handed to a
//     TerminalHandler in arrival order — job envelopes several at once,
//     two of one job id never together, control messages after all
//     before them (pipeline.go) — and acknowledged to the broker in
//     arrival order, each only after its handler returned nil (persist,
//     then acknowledge), an inbox bounded in messages and bytes (past the byte
//     bound paho's reader waits, so the broker keeps the rest), a retained
//     status with an offline last will, and a Sync after every connect —
//     once the backlog the broker kept is taken in, saying whether it kept
//     the session —, two minutes after the last one, and on a SyncRequest.
//     It reconnects by itself rather than through paho's auto-reconnect,
//     which drops the CONNACK's session-present flag.
//   - Dispatcher is the central side: it signs and publishes jobs, takes
//     receipts, results, status and Syncs, acknowledges results with a
//     signed ResultAck and publishes again what a terminal's Sync shows it
//     lacks, off the message handler and newest Sync first, sparing jobs
//     published within the grace; RequestSync asks a terminal for
//     everything it holds again; a job over MaxMessageBytes is refused
//     before publishing. JobStore and ResultStore are where a central
//     system keeps what it sent and took; MemoryJobs and MemoryResults keep
//     them in memory.
//   - Monitor is a read-only, clean-session watcher (Fleet builds on it for
//     tekenctl fleet; tests tap the wire with it); ClearSession removes the
//     session a one-off dispatch left behind.
//
// A publish never queues in memory while the connection is down: it fails
// with ErrNotConnected and the caller's durable store sends it again after
// the next connect. Every blocking call takes a context.
//
// Every publish has a deadline, whatever the caller's context: the broker
// has Connection.AnswerTimeout to answer it (PUBACK), as it has for a
// SUBACK and a PINGRESP. A broker that hangs keeps its sockets open, so the
// connection looks up and paho, with a persistent session and
// auto-reconnect, never completes such a publish by itself; past the
// deadline the publish fails with ErrStalled and the client reports itself
// stalled (Terminal.Stalled, TerminalConfig.OnStall) until the broker
// answers again or a new connection is up. Publishes nobody waits for
// (receipts, ResultAcks) go through a bounded queue to one sender
// goroutine, so neither the handler worker nor a caller ever blocks inside
// paho.
//
// The transport knows the contract's types, topics and Encode/Decode
// functions, and nothing of bbolt, PIV tokens or signature formats.
package transport
