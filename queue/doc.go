// Package queue is the terminal's durable store on bbolt: jobs and their
// state machine, the outbox of results, and the hash-chained audit log.
package queue
