"""Judge wire messages against the Teken JSON Schemas with python3-jsonschema.

Usage: /usr/bin/python3 validate.py SCHEMA_DIR < cases

Each line of stdin is a JSON object {"name": ..., "schema": ..., "doc": ...}:
schema names SCHEMA_DIR/<schema>.schema.json, and doc is the message's JSON
text, base64-encoded so that its bytes arrive exactly as the test wrote them.
For each line one line goes to stdout: the name, "valid" or "invalid", and
for an invalid message the first error, ASCII-escaped.

Draft202012Validator asserts formats here. The schemas use one format,
date-time, and Debian's python3-jsonschema checks it only with the
rfc3339-validator module, which Debian does not package; so this script
always brings its own checker, RFC 3339 section 5.6 with the calendar, and
the verdicts do not depend on what else is installed. The patterns of the
schemas state the syntax by themselves; the checker adds only what a
pattern cannot, such as 2026-02-30.

Used by api/schema_agree_test.go (TestSchemaAgreement).
"""

import base64
import datetime
import json
import os
import re
import sys

from jsonschema import Draft202012Validator, FormatChecker

RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.[0-9]+)?(?:[Zz]|[+-]([0-9]{2}):([0-9]{2}))"
)


def is_date_time(instance):
    if not isinstance(instance, str):
        return True
    m = RFC3339.fullmatch(instance)
    if m is None:
        return False
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    try:
        datetime.date(year, month, day)
    except ValueError:
        return False
    if hour > 23 or minute > 59 or second > 60:  # 60: a leap second
        return False
    if m.group(7) is not None and (int(m.group(7)) > 23 or int(m.group(8)) > 59):
        return False
    return True


def main():
    schema_dir = sys.argv[1]
    checker = FormatChecker()
    checker.checks("date-time")(is_date_time)
    validators = {}
    for line in sys.stdin:
        case = json.loads(line)
        name = case["schema"]
        v = validators.get(name)
        if v is None:
            path = os.path.join(schema_dir, name + ".schema.json")
            with open(path, encoding="utf-8") as f:
                schema = json.load(f)
            Draft202012Validator.check_schema(schema)
            v = validators[name] = Draft202012Validator(schema, format_checker=checker)
        raw = base64.b64decode(case["doc"])
        try:
            instance = json.loads(raw.decode("utf-8"))
        except ValueError as e:
            print(case["name"], "invalid", ascii("not JSON: " + str(e)))
            continue
        error = next(iter(v.iter_errors(instance)), None)
        if error is None:
            print(case["name"], "valid")
        else:
            where = "/".join(str(p) for p in error.absolute_path)
            print(case["name"], "invalid", ascii(where + ": " + error.message[:200]))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
