// Package device owns the official's PIV token: the readers, presence (tap
// and removal), certificates, PIN retries, PIN verification and signing, and
// the typed errors callers decide on. It is the only package that imports
// piv-go.
package device
