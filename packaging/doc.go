// Package packaging holds no Go code: it is the home of the teken .deb
// (nfpm.yaml, debian/, polkit/, man/) and of the default configuration, and
// its tests build the package with `make deb`, check it with lintian and
// systemd-analyze, and install and purge it with dpkg.
package packaging
