// Package testenv starts the real components that Teken's tests run against —
// a private pcscd with the vsmartcard vpcd reader driver, and Mosquitto — on
// free loopback ports, waits for each by polling a condition, and stops it in
// t.Cleanup so that nothing outlives the test.
//
// A component that cannot be started makes the test skip on a developer
// machine, and fail when CI=true: CI must never pass by skipping.
package testenv
