// Try every pattern on every string with ECMA-262 regular expressions, as
// JavaScript JSON Schema validators do: with no flag (older ajv), the u flag
// (ajv's default) and the v flag (ES2024).
//
// Usage: node patterns.js PATTERNS.json STRINGS.json
//
// Both files hold a JSON array of strings (lone surrogates survive
// JSON.parse as single UTF-16 code units). For each flag and pattern i one
// line goes to stdout: "FLAGS i BITS" (FLAGS "-" for none), BITS holding for
// each string 1 when RegExp.prototype.test finds the pattern and 0 when not,
// E for all when the pattern does not compile under that flag; no lines
// for a flag this node does not know. Used by
// api/schema_agree_test.go (TestSchemaPatternsPortable).
"use strict";
const fs = require("fs");
const [patternsFile, stringsFile] = process.argv.slice(2);
const patterns = JSON.parse(fs.readFileSync(patternsFile, "utf8"));
const strs = JSON.parse(fs.readFileSync(stringsFile, "utf8"));
for (const flags of ["", "u", "v"]) {
  // The v flag is ECMAScript 2024 (node 20); an older node, and the
  // validators running on it, cannot use it.
  try {
    new RegExp("", flags);
  } catch (e) {
    continue;
  }
  patterns.forEach((p, i) => {
    let rx;
    try {
      rx = new RegExp(p, flags);
    } catch (e) {
      console.log((flags || "-") + " " + i + " " + "E".repeat(strs.length));
      return;
    }
    console.log((flags || "-") + " " + i + " " + strs.map((s) => (rx.test(s) ? "1" : "0")).join(""));
  });
}
