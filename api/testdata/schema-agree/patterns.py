"""Try every pattern on every string with Python's re, as python3-jsonschema does.

Usage: /usr/bin/python3 patterns.py PATTERNS.json STRINGS.json

Both files hold a JSON array of strings. For pattern i one line goes to
stdout: "re i BITS", BITS holding for each string 1 when re.search finds
the pattern in it and 0 when not (E for all when the pattern does not
compile). Used by api/schema_agree_test.go (TestSchemaPatternsPortable);
patterns.js does the same for ECMA-262.
"""

import json
import re
import sys


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        patterns = json.load(f)
    with open(sys.argv[2], encoding="utf-8") as f:
        strings = json.load(f)
    for i, p in enumerate(patterns):
        try:
            rx = re.compile(p)
        except re.error:
            print("re", i, "E" * len(strings))
            continue
        print("re", i, "".join("1" if rx.search(s) else "0" for s in strings))


if __name__ == "__main__":
    main()
