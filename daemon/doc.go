// Package daemon is tekend: the wiring of the leaves (device, queue, api,
// transport, signature) and the terminal's policy — configuration, the
// official's flow (job → official → PIN → token → result), the kiosk page
// and its local API (daemon/kiosk), metrics and health for IT, and systemd
// notification.
//
// # Parts
//
// Open builds a Daemon from its parts, each behind what it needs of the
// others:
//
//   - intake (intake.go) is the transport's TerminalHandler: it verifies
//     job envelopes, inspects each PDF once, stores the job and only then
//     lets the transport acknowledge it; it acts on Cancel and ResultAck
//     and answers Syncs.
//   - flow (flow.go, batch.go) is the official's side. It runs the page
//     state machine (page.go) against the small interfaces it declares —
//     flowStore, tokenLayer and card, pagePublisher, a clock — so it is
//     tested with a token in memory (flow_test.go).
//   - completer (results.go) ends jobs: every Result, whatever the
//     outcome, is built and encoded there once, and written in the
//     transaction that marks the job done.
//   - docSigner (sign.go) turns a document and a card session into CMS,
//     raw or PAdES with the engines of signature/.
//   - outbox (outbox.go) publishes stored results, byte for byte as
//     stored, until each is acknowledged.
//   - the main loop and the status (mainloop.go), metrics (metrics.go,
//     collector.go) and IT's endpoints (health.go).
//
// Run serves until its context ends; Close undoes Open in reverse order,
// once, whether or not Run ran: the broker session (which publishes the
// offline status), the listeners, the tokens, the store.
//
// # Goroutines and who owns them
//
// Run's errgroup owns eight, and the first to fail stops the rest: the
// kiosk HTTP server, the metrics server, the outbox, the main loop, the
// status sender, the reload loop (SIGHUP, reload.go), the admin socket of
// tekend backup (adminserver.go, which waits for the goroutine of each
// connection), and one that waits for the end and then stops serving (stop:
// the batch in flight gets the shutdown grace, then is cancelled and its
// job waits again; the HTTP servers shut down, which ends open kiosk
// event streams). net/http runs each request on its own goroutine; a
// signing batch runs on its request's, under a context that ends with the
// request or when the grace is over (batches). The leaves own the rest and
// stop them in their Close: the transport its connect loop, its handler
// pipeline (which calls intake for up to intakeWorkers job envelopes at
// once, control messages alone, and acknowledges in arrival order) and its
// Sync loop; the store its committer and sweeper; the device
// layer its presence watcher.
//
// # Who may block on what
//
// The main loop turns token events into page states, recomputes the
// status every tick and pets the systemd watchdog only after the store
// answered. It waits on pcscd (reading a tapped token) and on the store,
// never on the network: it hands each status to the status sender through
// a one-slot mailbox (latestStatus), newest wins, and the sender waits for
// the broker's PUBACK for at most statusTimeout. A tap that arrives while
// a batch runs is read by the main loop once the batch is over.
//
// intake runs on the transport's worker: it waits on the store (an fsync
// per commit group) and never on the card or the page. An error it
// returns means "not stored, try again": the transport retries the same
// message and holds back the ones behind it, so nothing is acknowledged
// before it is on disk.
//
// A kiosk request may hold the card, for card work only: Sign opens one
// exclusive session for the whole batch, verifies the PIN once (never
// retrying a wrong one) and, under PIN policy "always", again before each
// further signature, and signs every document. Timestamps are fetched from
// the TSA after the session has closed, one document at a time, and
// patched into the reserved room of each signed PDF; each job is completed
// as soon as its own timestamps are in. Only one action (a batch or a
// rejection) runs at a time; a second is refused with "card busy".
//
// The outbox waits for the broker's PUBACK of each result, with a
// deadline; it is its own goroutine, so a slow or stalled broker delays
// results and nothing else.
//
// The page says what the terminal lacks — card service, reader, central
// system, room in the store — from the same probes as /readyz (parts.go),
// refreshed on every status tick.
//
// # The page
//
// page.go is the whole state machine: idle → reading (a token arrived;
// its certificate is read without the PIN) → token (the signer's letters)
// or problem (the token cannot sign: its certificate is expired, not yet
// valid, not for signing or from an untrusted CA, the PIN is blocked, or
// it cannot be read) → signing → done → token on Dismiss. A removal goes
// back to idle, except during a batch, which notices the removal itself
// and keeps what was signed. Viewing a document and typing the PIN are
// screens of the page over token; the flow answers them with Document and
// Sign, which is refused on any other screen.
//
// # How a job moves through the store
//
// intake stores a verified envelope as received, with what the page needs
// beside it (title, documents, where a PAdES block will stand, the kid),
// then admits it: ready for its signer, or done with outcome failed when a
// document cannot be signed as asked. A batch moves a ready job to
// signing, signs every document, and completes it — done, signed, with its
// Result in the same transaction — or puts it back to ready when the
// signing fails or shutdown cuts it short. A ready job also ends by the
// official's rejection, a Cancel from the central side, or expiry (the
// store's sweeper, at start and whenever the earliest expires_at passes,
// with the Result from completer.expiryPayload; jobsExpired tells the
// outbox, the metric and the page right after the commit). A job
// found in signing when the store opens goes back to ready: a crash never
// leaves it half signed. When the disk is full, the store is full
// (queue.ErrFull): intake does not acknowledge new jobs, and a put-back
// that cannot be written is held in memory and written with the first
// write that succeeds, so no job stays in signing. The Result waits in the outbox until a ResultAck
// names its job (queue.AckResult, one transaction by job id), and is
// published again after every reconnect and SyncRequest, and on its own
// doubling backoff (broker.result_resend_initial up to result_resend_max)
// while connected; delivered
// results and their jobs are pruned after the retention period. The
// audit log records every step.
package daemon
