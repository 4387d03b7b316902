#!/bin/sh
# version.sh: prints the upstream part of the package's Debian version,
# derived from git so that every build sorts after the one before:
#   tag v1.2.3                -> 1.2.3
#   v1.2.3 plus 4 commits     -> 1.2.3+git4.<sha>
#   tag v1.3.0-rc1            -> 1.3.0~rc1   (sorts before 1.3.0)
#   no tag                    -> 0.1.0~git<commit time, UTC>.<sha>
#   uncommitted changes       -> ...+dirty
set -eu

sha=$(git rev-parse --short=12 HEAD 2>/dev/null) || { echo "0.1.0~nogit"; exit 0; }
dirty=""
git diff --quiet HEAD -- 2>/dev/null || dirty="+dirty"

if d=$(git describe --tags --match 'v[0-9]*' 2>/dev/null); then
	v=$(printf '%s\n' "${d#v}" | sed -E \
		-e 's/^(.*)-([0-9]+)-g([0-9a-f]+)$/\1+git\2.\3/' \
		-e 's/-/~/g')
else
	when=$(TZ=UTC git log -1 --format=%cd --date=format-local:%Y%m%d%H%M%S)
	v="0.1.0~git$when.$sha"
fi
printf '%s%s\n' "$v" "$dirty"
