// Package sandbox starts private instances of the real components Teken runs
// against — pcscd with the vsmartcard vpcd reader driver, and Mosquitto — on
// free loopback ports, for the tests (through internal/testenv) and for
// `make demo`. Each start waits for readiness by polling a condition.
package sandbox
