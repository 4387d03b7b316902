// Package ctl holds what tekenctl does, one file per area, so the command
// stays a thin layer of flags and exit codes: settings (flags, environment,
// config file), dispatcher keys, dispatching jobs, following and verifying
// results (PDF signatures through signature/pades.Verify), the fleet's
// retained status, the audit log of a tekend database, enrolling an
// official's token (enrol*.go, through package device) and a software
// token for demos.
//
// Every function that waits takes a context; nothing here exits the process
// or reads flags.
package ctl
