// Teken kiosk page: the texts. Every word the official reads comes from the
// catalogue of the page's language, web/i18n/{lang}.json, shared with Go.
"use strict";

let catalogs = {};
let lang = document.documentElement.lang || "id";

// t returns the text of a catalogue id with its {placeholders} filled in.
function t(id, params) {
  const cat = catalogs[lang] || {};
  let s = cat[id];
  if (s == null) s = id;
  for (const [k, v] of Object.entries(params || {})) s = s.split("{" + k + "}").join(String(v));
  return s;
}

// tn returns the text of a counted thing: the catalogue holds one id per
// plural form of the language (CLDR, as Intl.PluralRules names them), so
// English says "1 letter" and "2 letters" while Indonesian says "surat" for
// both. Every id used with tn has an .one and an .other form in each
// catalogue (catalog_test.go holds them to it); {n} is the count.
function tn(id, n, params) {
  const cat = catalogs[lang] || {};
  let form = "other";
  try { form = new Intl.PluralRules(locale()).select(n); } catch (_) { /* no Intl: other */ }
  const key = cat[id + "." + form] != null ? id + "." + form : id + ".other";
  return t(key, Object.assign({ n }, params || {}));
}

// locale is the BCP 47 tag dates and plurals are formatted for.
function locale() {
  return lang === "id" ? "id-ID" : "en-GB";
}

// fmtDate writes a time as the official reads a date in a letter:
// "5 Januari 2026 pukul 14.00", "5 January 2026 at 14:00".
function fmtDate(s) {
  if (!s) return "";
  const d = new Date(s);
  if (isNaN(d)) return "";
  try {
    return d.toLocaleString(locale(), { dateStyle: "long", timeStyle: "short" });
  } catch (_) {
    return d.toISOString();
  }
}
