package ctl

import _ "embed" // the completion script ships inside the binary

// BashCompletion is the bash completion script for tekenctl; the package
// installs the same file (internal/ctl/tekenctl.bash).
//
//go:embed tekenctl.bash
var BashCompletion string
