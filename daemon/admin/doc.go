// Package admin is tekend's admin socket: a unix socket on the terminal
// itself through which root, or tekend's own user, takes a hot backup of
// the running terminal's store (`tekend backup FILE`). bbolt holds an
// exclusive lock on the store while tekend runs, so no other process can
// open the file, not even read-only; the copy is made inside tekend, in
// one read transaction (queue.Store.Backup, bbolt's Tx.WriteTo), while
// tekend goes on taking jobs and signing.
//
// # Who may connect
//
// The socket is DefaultSocket for the packaged service, in the directory
// systemd makes for it (RuntimeDirectory=teken), mode 0660, owned by
// tekend's user and group. The mode keeps others from connecting; the
// server then asks the kernel who the peer is (SO_PEERCRED, unix(7)) and
// serves only uid 0 and tekend's own uid (RootOrSelf), so a member of
// tekend's group is refused all the same.
//
// # Protocol, version 1
//
// Every line ends with LF and is at most 1024 bytes long, LF included.
// The client sends one request line:
//
//	teken-admin/1 backup
//
// The server answers with one header line, either
//
//	teken-admin/1 ok
//	teken-admin/1 error CODE MESSAGE
//
// where CODE is one of the Code constants and MESSAGE is text for a
// person. After an error the server closes the connection. A request of
// another version is answered in version 1 with unsupported-version, so a
// newer client can tell an older tekend.
//
// After "ok" the server sends the store file as chunks, each a 4-byte
// big-endian length from 1 to MaxChunk followed by that many bytes, then
// a length of 0, then one trailer line, either
//
//	teken-admin/1 done BYTES
//	teken-admin/1 error CODE MESSAGE
//
// BYTES, in decimal, is the length of the whole file; a client keeps the
// copy only when it received exactly that many bytes and the trailer says
// done. The chunks let a server that fails half way say so, where a bare
// stream could only end, and the copy would look whole.
//
// # Not blocking tekend
//
// The copy runs on the connection's own goroutine in a bbolt read
// transaction, which never waits for the store's committer, nor the
// committer for it. One exception is bbolt's own: a commit that must grow
// the file's memory map waits until every read transaction has ended. So
// that a client that stops reading cannot hold the transaction open for
// long, every write to it has a deadline (ServerOptions.IdleTimeout), and
// only one backup runs at a time.
package admin
