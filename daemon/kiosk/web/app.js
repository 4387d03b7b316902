// Teken kiosk page. Renders the terminal's state, pushed by the daemon over
// Server-Sent Events; every action is a same-origin POST with a JSON body and
// the page's CSRF token. The PIN lives only in `pin` until it is sent, and is
// cleared right after.
"use strict";

// The CSRF token and the boot id of the tekend that served the page. When
// tekend restarts, the views it sends carry a new boot: the page then fetches
// the new token (refreshSession) and goes on showing what it showed.
let csrf = document.querySelector('meta[name="csrf-token"]').content;
let boot = document.querySelector('meta[name="boot-id"]').content;
let sessionRefresh = null; // the refresh in flight, if any
// The most characters of a reject reason. The terminal counts code points
// once line breaks are one LF; the browser's maxlength counts UTF-16 units,
// never fewer, so the page never lets through more than the server takes.
const reasonMax = Number(document.querySelector('meta[name="reason-max"]').content) || 1024;
let view = { state: "idle", jobs: [] };
let catalogs = {};
let lang = document.documentElement.lang || "id";
let ui = { mode: "list", selected: new Set(), doc: null, error: null, busy: false, confirmLast: false, reason: "" };
let pin = "";

function t(id, params) {
  const cat = catalogs[lang] || {};
  let s = cat[id] || id;
  for (const [k, v] of Object.entries(params || {})) s = s.split("{" + k + "}").join(String(v));
  return s;
}

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k === "style") e.style.cssText = v; // CSSOM, allowed by the page's CSP
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (v === true) e.setAttribute(k, "");
    else if (v !== false && v != null) e.setAttribute(k, v);
  }
  for (const c of children.flat()) if (c != null) e.append(c.nodeType ? c : document.createTextNode(String(c)));
  return e;
}

// refreshSession fetches the CSRF token of the tekend serving now; calls
// while one is in flight share it. A failure leaves the old token: the next
// view or refused action tries again.
function refreshSession() {
  if (!sessionRefresh) {
    sessionRefresh = (async () => {
      try {
        const res = await fetch("/api/session", { credentials: "same-origin", cache: "no-store" });
        if (!res.ok) throw new Error("session " + res.status);
        const s = await res.json();
        if (s.csrf) { csrf = s.csrf; boot = s.boot || boot; }
      } catch (err) {
        console.error(err);
      } finally {
        sessionRefresh = null;
      }
    })();
  }
  return sessionRefresh;
}

// post sends one action. A token of an earlier tekend is refused with
// err_session_stale: the page fetches the new one, then sends the action
// again when opts.retry (nothing the official typed is in it), or returns
// the refusal so the screen asks the official to try again.
async function post(path, body, opts) {
  const send = async () => {
    if (sessionRefresh) await sessionRefresh;
    let res;
    try {
      res = await fetch(path, {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-Teken-CSRF": csrf },
        body: JSON.stringify(body || {}),
        credentials: "same-origin",
      });
    } catch (_) {
      return { res: null, data: { error: { code: "err_no_answer" } } };
    }
    let data = {};
    try { data = await res.json(); } catch (_) { /* empty body */ }
    return { res, data };
  };
  let { res, data } = await send();
  if (res && res.status === 403 && data.error && data.error.code === "err_session_stale") {
    await refreshSession();
    if (opts && opts.retry) ({ res, data } = await send());
  }
  if (res && !res.ok && !data.error) data.error = { code: "err_internal" };
  return data;
}

function errorBox(err) {
  if (!err) return null;
  return el("div", { class: "error", role: "alert", "data-error": err.code }, t(err.code, err.params));
}

function fmtDate(s) {
  if (!s) return "";
  const d = new Date(s);
  return d.toLocaleString(lang === "id" ? "id-ID" : "en-GB", { dateStyle: "medium", timeStyle: "short" });
}

function signerBox() {
  const s = view.signer || {};
  return el("div", { class: "signer" },
    el("div", {}, el("span", { class: "label" }, t("signer_label")), el("b", { id: "signer-name" }, s.name || "")),
    s.nip ? el("div", {}, el("span", { class: "label" }, t("nip_label")), el("b", {}, s.nip)) : null);
}

// partsBox says what the terminal lacks now (no card service, no reader,
// offline, store full), from the same probes as IT's /readyz: an alert when
// no token can be used, a remark otherwise.
function partsBox() {
  const parts = view.parts || [];
  if (!parts.length) return null;
  return el("div", { class: (view.unavailable ? "error" : "warning") + " parts", id: "parts",
    role: view.unavailable ? "alert" : "status" },
    parts.map((m) => el("p", { "data-part": m.code }, t(m.code, m.params))));
}

function renderIdle() {
  if (view.unavailable) {
    return el("div", { class: "center", "data-state": "idle", "data-unavailable": "" },
      el("div", { class: "big" }, t("idle_unavailable_title")),
      partsBox());
  }
  return el("div", { class: "center", "data-state": "idle" },
    el("div", { class: "tap", "aria-hidden": "true" }),
    el("div", { class: "big" }, t("idle_title")),
    el("div", { class: "hint" }, t("idle_hint")),
    partsBox());
}

function renderReading() {
  return el("div", { class: "center", "data-state": "reading" }, el("div", { class: "big" }, t("reading_token")));
}

function letterRow(job) {
  const checked = ui.selected.has(job.id);
  const docs = job.documents || [];
  return el("div", { class: "letter" + (checked ? " selected" : ""), "data-job": job.id },
    el("input", { type: "checkbox", checked, "aria-label": job.title, disabled: !view.can_sign,
      onchange: (e) => { e.target.checked ? ui.selected.add(job.id) : ui.selected.delete(job.id); render(); } }),
    el("div", {},
      el("div", { class: "title" }, job.title),
      el("div", { class: "meta" },
        el("span", {}, t("col_number") + ": " + (job.number || "—")),
        el("span", {}, t("col_sender") + ": " + (job.sender || "—")),
        job.expires_at ? el("span", {}, t("col_expires") + ": " + fmtDate(job.expires_at)) : null),
      docs.map((d) => el("div", { class: "hash", title: t("col_hash") }, (d.name || "") + " · SHA-256 " + d.sha256))),
    el("div", { class: "actions" },
      docs.filter((d) => d.available).map((d) => el("button", { type: "button", "data-open": job.id + "/" + d.index,
        onclick: () => { ui.mode = "doc"; ui.doc = { job, d }; render(); } }, t("open_document"))),
      el("button", { type: "button", class: "danger", "data-reject": job.id,
        onclick: () => { ui.mode = "reject"; ui.doc = { job }; ui.error = null; ui.reason = ""; render(); } }, t("reject"))));
}

function renderList() {
  const jobs = view.jobs || [];
  ui.selected = new Set([...ui.selected].filter((id) => jobs.some((j) => j.id === id)));
  const n = ui.selected.size;
  return el("div", { class: "docview", "data-state": "token" },
    signerBox(),
    errorBox(ui.error || view.error),
    partsBox(),
    view.notice ? el("div", { class: "warning" }, t(view.notice.code, view.notice.params)) : null,
    el("div", { class: "big", id: "waiting" }, jobs.length ? t("letters_waiting", { n: jobs.length }) : t("no_letters")),
    el("div", { class: "letters" }, jobs.map(letterRow)),
    jobs.length ? el("div", { class: "actions" },
      el("button", { type: "button", disabled: !view.can_sign,
        onclick: () => { jobs.slice(0, view.max_batch || jobs.length).forEach((j) => ui.selected.add(j.id)); render(); } }, t("select_all")),
      el("button", { type: "button", class: "primary", id: "sign", disabled: !view.can_sign || n === 0,
        onclick: () => { ui.mode = "pin"; ui.error = null; pin = ""; ui.confirmLast = false; render(); } }, t("sign_selected", { n }))) : null);
}

function renderDoc() {
  const { job, d } = ui.doc;
  const url = "/api/documents/" + encodeURIComponent(job.id) + "/" + d.index;
  const pages = el("div", { class: "pages", id: "pages" });
  const box = el("div", { class: "docview", "data-state": "document" },
    el("div", { class: "title big" }, job.title),
    el("div", { class: "hash" }, t("col_hash") + ": " + d.sha256),
    d.media_type === "application/pdf" ? pages
      : d.media_type.startsWith("image/") ? el("img", { src: url, alt: job.title, class: "docimage" })
      : el("iframe", { src: url, title: job.title, sandbox: "" }),
    el("div", { class: "actions" }, el("button", { type: "button", onclick: () => { ui.mode = "list"; render(); } }, t("close_document"))));
  if (d.media_type === "application/pdf") renderPDF(url, pages, d.block);
  return box;
}

// renderPDF draws every page with the vendored pdf.js, so the official reads
// the very bytes that will be signed, with no plugin and no network.
let pdfjs = null;
async function renderPDF(url, into, block) {
  try {
    if (!pdfjs) {
      pdfjs = await import("/static/vendor/pdfjs/pdf.min.mjs");
      pdfjs.GlobalWorkerOptions.workerSrc = "/static/vendor/pdfjs/pdf.worker.min.mjs";
    }
    const res = await fetch(url, { credentials: "same-origin" });
    if (!res.ok) throw new Error("document " + res.status);
    const data = new Uint8Array(await res.arrayBuffer());
    const doc = await pdfjs.getDocument({ data, isEvalSupported: false, enableXfa: false,
      standardFontDataUrl: "/static/vendor/pdfjs/standard_fonts/" }).promise;
    const width = Math.min(into.clientWidth || 900, 1100);
    for (let n = 1; n <= doc.numPages; n++) {
      if (!into.isConnected) return;
      const page = await doc.getPage(n);
      const base = page.getViewport({ scale: 1 });
      const viewport = page.getViewport({ scale: (width / base.width) * (window.devicePixelRatio || 1) });
      const canvas = el("canvas", { "data-page": String(n), "aria-label": "page " + n });
      canvas.width = viewport.width;
      canvas.height = viewport.height;
      canvas.style.width = width + "px";
      const sheet = el("div", { class: "sheet" }, canvas);
      into.append(sheet);
      await page.render({ canvasContext: canvas.getContext("2d"), viewport }).promise;
      canvas.setAttribute("data-rendered", "");
      if (block && block.page === n) {
        // Where the visible signature block will stand once signed.
        const [x1, y1, x2, y2] = viewport.convertToViewportRectangle(block.rect);
        const k = width / viewport.width;
        const mark = el("div", { class: "block-mark", id: "block-mark" }, t("signature_block_here"));
        mark.style.left = Math.min(x1, x2) * k + "px";
        mark.style.top = Math.min(y1, y2) * k + "px";
        mark.style.width = Math.abs(x2 - x1) * k + "px";
        mark.style.height = Math.abs(y2 - y1) * k + "px";
        sheet.append(mark);
      }
    }
    into.setAttribute("data-pages", String(doc.numPages));
  } catch (err) {
    into.replaceChildren(errorBox({ code: "err_document" }));
    console.error(err);
  }
}

// renderReject asks for an optional reason, on as many lines as the official
// likes. What is typed lives in ui.reason, so a view pushed meanwhile (which
// re-renders the screen) does not lose it.
function renderReject() {
  const { job } = ui.doc;
  const reason = el("textarea", { id: "reject-reason", placeholder: t("reject_reason"), rows: "5",
    maxlength: String(reasonMax), "aria-label": t("reject_reason"), wrap: "soft",
    oninput: (e) => { ui.reason = e.target.value; } });
  reason.value = ui.reason;
  setTimeout(() => reason.focus(), 0);
  return el("div", { class: "pin", "data-state": "reject" },
    el("div", { class: "big" }, job.title),
    errorBox(ui.error),
    reason,
    el("div", { class: "actions" },
      el("button", { type: "button", onclick: () => { ui.mode = "list"; ui.reason = ""; render(); } }, t("cancel")),
      el("button", { type: "button", class: "danger", id: "reject-confirm", disabled: ui.busy, onclick: async () => {
        ui.reason = reason.value;
        ui.busy = true; render();
        const res = await post("/api/reject", { job_id: job.id, reason: ui.reason });
        ui.busy = false;
        if (res.error) { ui.error = res.error; render(); return; }
        ui.mode = "list"; ui.error = null; ui.reason = ""; render();
      } }, t("reject_confirm"))));
}

function renderPIN() {
  const ids = [...ui.selected];
  const tries = view.tries_left;
  const last = tries === 1;
  const input = el("input", { type: "password", id: "pin", inputmode: "numeric", autocomplete: "off", maxlength: "8",
    "aria-label": t("pin_title"), value: pin, oninput: (e) => { pin = e.target.value.replace(/[^0-9A-Za-z]/g, ""); } });
  const key = (k) => el("button", { type: "button", "data-key": k, onclick: () => { if (pin.length < 8) { pin += k; input.value = pin; } } }, k);
  const submit = async () => {
    if (!pin || ui.busy) return;
    ui.busy = true; render();
    const body = { job_ids: ids, pin, confirm_last_attempt: ui.confirmLast };
    pin = "";
    const res = await post("/api/sign", body);
    body.pin = "";
    ui.busy = false;
    if (res.error) {
      ui.error = res.error;
      // A wrong or malformed PIN keeps the PIN screen; anything else goes
      // back to the list.
      // So does a refusal of the page's old token (tekend restarted) or
      // no answer: the official types the PIN again.
      if (!["err_wrong_pin", "err_last_attempt", "err_pin_format", "err_session_stale", "err_no_answer"].includes(res.error.code)) ui.mode = "list";
      render();
      return;
    }
    ui.selected.clear(); ui.error = null; ui.mode = "list"; render();
  };
  input.addEventListener("keydown", (e) => { if (e.key === "Enter") submit(); });
  const box = el("div", { class: "pin", "data-state": "pin" },
    el("div", { class: "big" }, t("pin_title")),
    el("div", { class: "hint" }, t("pin_for_letters", { n: ids.length }) + " · " + t("pin_hint")),
    errorBox(ui.error),
    tries != null ? el("div", { id: "tries", class: last ? "warning" : "hint" }, last ? t("last_attempt_warning") : t("tries_left", { n: tries })) : null,
    last ? el("label", {}, el("input", { type: "checkbox", id: "confirm-last", checked: ui.confirmLast,
      onchange: (e) => { ui.confirmLast = e.target.checked; } }), " " + t("last_attempt_confirm")) : null,
    input,
    el("div", { class: "keypad" }, ["1", "2", "3", "4", "5", "6", "7", "8", "9"].map(key),
      el("button", { type: "button", onclick: () => { pin = ""; input.value = ""; } }, t("pin_clear")), key("0"),
      el("button", { type: "button", class: "primary", id: "pin-submit", disabled: ui.busy, onclick: submit }, t("pin_submit"))),
    el("div", { class: "actions" }, el("button", { type: "button", onclick: () => { pin = ""; ui.mode = "list"; ui.error = null; render(); } }, t("cancel"))));
  setTimeout(() => input.focus(), 0);
  return box;
}

function renderSigning() {
  const p = view.progress || { done: 0, total: 0 };
  const pct = p.total ? Math.round((100 * p.done) / p.total) : 0;
  return el("div", { class: "center", "data-state": "signing" },
    el("div", { class: "big" }, t("signing_title")),
    el("div", { class: "hint" }, t("signing_hint")),
    el("div", { class: "progress" }, el("div", { style: "width:" + pct + "%" })),
    el("div", {}, t("signing_progress", { done: p.done, total: p.total })));
}

function renderDone() {
  const r = view.result || {};
  const partial = r.left > 0;
  return el("div", { class: "center", "data-state": "done" },
    el("div", { class: partial ? "big" : "big ok" }, partial ? t("stopped_title") : t("done_title")),
    partial ? el("div", { class: "warning", id: "done-partial" }, t("signed_partial", { signed: r.signed, left: r.left }))
      : r.signed ? el("div", { id: "done-signed" }, t("done_signed", { n: r.signed })) : null,
    errorBox(view.error),
    partsBox(),
    partial ? null : el("div", { class: "hint" }, t("done_remove")),
    el("button", { type: "button", onclick: () => post("/api/dismiss", {}, { retry: true }) }, t("back")));
}

function render() {
  document.title = t("app_title");
  document.documentElement.lang = lang;
  document.getElementById("app-title").textContent = t("app_title");
  document.getElementById("lang").textContent = t("language_switch");
  let screen;
  if (view.state === "idle" || view.state === "") screen = renderIdle();
  else if (view.state === "reading") screen = renderReading();
  else if (view.state === "signing") screen = renderSigning();
  else if (view.state === "done") screen = renderDone();
  else if (ui.mode === "doc" && ui.doc) screen = renderDoc();
  else if (ui.mode === "pin") screen = renderPIN();
  else if (ui.mode === "reject" && ui.doc) screen = renderReject();
  else screen = renderList();
  document.getElementById("screen").replaceChildren(screen);
}

function onView(next) {
  const before = view.state;
  view = next;
  if (view.boot && view.boot !== boot) refreshSession();
  if (view.lang) lang = view.lang;
  if (before !== view.state) {
    if (view.state !== "token") { ui.mode = "list"; ui.doc = null; pin = ""; ui.reason = ""; }
    if (view.state === "idle") { ui.selected.clear(); ui.error = null; }
  }
  // The PIN and reject screens keep their own input; re-rendering them
  // would drop focus.
  if (ui.mode === "reject" && view.state === "token") return;
  if (!(ui.mode === "pin" && view.state === "token")) render();
  else document.getElementById("tries") && render();
}

async function start() {
  for (const l of ["id", "en"]) {
    const res = await fetch("/static/i18n/" + l + ".json", { credentials: "same-origin" });
    catalogs[l] = await res.json();
  }
  document.getElementById("lang").addEventListener("click", async () => {
    const next = lang === "id" ? "en" : "id";
    lang = next; render();
    await post("/api/language", { lang: next }, { retry: true });
  });
  render();
  connect();
}

// connect follows the terminal's views. The browser reconnects by itself
// when the stream ends (tekend restarts); should it give up, the page
// starts a new stream.
function connect() {
  const offline = document.getElementById("offline");
  const es = new EventSource("/api/events");
  es.addEventListener("view", (e) => { offline.hidden = true; onView(JSON.parse(e.data)); });
  es.onerror = () => {
    offline.textContent = t("connection_lost");
    offline.hidden = false;
    if (es.readyState === EventSource.CLOSED) {
      es.close();
      setTimeout(connect, 2000);
    }
  };
}

start();
