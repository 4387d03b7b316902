// Package doctor is `tekenctl doctor`: it checks the terminal it runs on
// from tekend's own configuration, with tekend's own code wherever tekend
// decides — the configuration and its files (daemon.CheckConfigFile), the
// broker connection (daemon.BrokerConnection), an official's certificate
// (daemon.CheckSignerCertificate) — and the device layer, the store and the
// transport for the rest. Each check ends in one Finding, ok, warn or fail,
// with what to do about it.
//
// It is a package of its own, not part of internal/ctl, because it imports
// daemon, whose tests import internal/demo, which imports internal/ctl.
//
// Nothing it does changes the terminal: tokens are read without a PIN, the
// broker sees a clean session under a client id of the doctor's own
// (ClientIDSuffix), the store is opened read-only or copied through
// tekend's admin socket, and tekend is only asked for /readyz.
package doctor
