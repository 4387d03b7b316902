// Package daemon wires tekend together: configuration, the signing flow, the
// kiosk page and its local API, metrics, and systemd notification.
package daemon
