// Package soak holds no code; its test (make soak) runs a live flow while
// tekend, Mosquitto and pcscd are killed at random, the broker is frozen
// and the terminal's disk fills, and checks that every job dispatched ends
// in exactly one outcome at the central side. It is not part of make test:
// it runs for as long as TEKEN_SOAK says.
package soak
