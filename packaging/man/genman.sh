#!/bin/sh
# genman.sh TEMPLATE BINDIR VERSION DATE: prints a manual page made from
# TEMPLATE, whose @HELP@ line is replaced by the program's own --help text
# (for tekenctl, also each command's), so the page cannot drift from the
# flags the binary really has.
set -eu

template=$1 bindir=$2 version=$3 date=$4
name=$(basename "$template" | cut -d. -f1)

# roff-escape plain text for a no-fill block: backslashes, leading dots and
# quotes (requests), and hyphens (minus signs in flags).
escape() {
	sed -e 's/\\/\\e/g' -e 's/-/\\-/g' -e "s/^\\([.']\\)/\\\\\\&\\1/"
}

help_block() {
	printf '.nf\n'
	"$@" | escape
	printf '.fi\n'
}

helptext() {
	case "$name" in
	tekenctl)
		help_block "$bindir/tekenctl" --help
		"$bindir/tekenctl" --help |
			awk '/^Commands:/ {on=1; next} on && /^  [a-z]/ {print $1} on && /^$/ {on=0}' |
			while read -r cmd; do
				printf '.SS "tekenctl %s"\n' "$cmd"
				help_block "$bindir/tekenctl" "$cmd" --help
			done
		;;
	*)
		help_block "$bindir/$name" --help
		;;
	esac
}

helpfile=$(mktemp)
trap 'rm -f "$helpfile"' EXIT
helptext 2>/dev/null >"$helpfile"
[ -s "$helpfile" ] || { echo "genman: no --help output from $bindir/$name" >&2; exit 1; }

while IFS= read -r line; do
	case "$line" in
	@HELP@) cat "$helpfile" ;;
	*) printf '%s\n' "$line" | sed -e "s/@VERSION@/$version/g" -e "s/@DATE@/$date/g" ;;
	esac
done <"$template"
