// Teken kiosk page. Renders the terminal's state, pushed by the daemon over
// Server-Sent Events. The page is plain scripts loaded in order: i18n.js
// (texts, plurals, dates), net.js (session and actions), preview.js
// (showing a document within bounds), screens.js, docview.js, pin.js, and
// this file, which holds the state and draws the screen for it.
"use strict";

let view = { state: "idle", jobs: [] };
// ui is what the page shows over the terminal's token state: the list, a
// document (doc: {jobID, index}), the PIN screen for pinJobs, the reject
// screen; back is where the PIN and reject screens return to.
let ui = { mode: "list", selected: new Set(), doc: null, error: null, busy: false, confirmLast: false, reason: "",
  pinJobs: [], back: "list" };
// signerCert names the token session the page's document states belong to.
let signerCert = null;

// focusKey names the focused element so that a redrawn screen can focus its
// twin.
function focusKey(e) {
  if (!e || e === document.body) return null;
  if (e.id) return "#" + CSS.escape(e.id);
  for (const a of ["data-key", "data-open", "data-reject", "data-job"]) {
    if (e.hasAttribute(a)) return "[" + a + '="' + CSS.escape(e.getAttribute(a)) + '"]';
  }
  const row = e.closest && e.closest("[data-job]");
  if (row && e.matches("input[type=checkbox]")) return '[data-job="' + CSS.escape(row.getAttribute("data-job")) + '"] input[type=checkbox]';
  return null;
}

function screenName() {
  if (view.state !== "token") return view.state || "idle";
  return ui.mode;
}

let lastScreen = null;
function render() {
  document.title = t("app_title");
  document.documentElement.lang = lang;
  document.getElementById("app-title").textContent = t("app_title");
  document.getElementById("lang").textContent = t("language_switch");
  let screen;
  if (view.state === "idle" || !view.state) screen = renderIdle();
  else if (view.state === "reading") screen = renderReading();
  else if (view.state === "signing") screen = renderSigning();
  else if (view.state === "done") screen = renderDone();
  else if (ui.mode === "doc" && ui.doc) screen = renderDoc();
  else if (ui.mode === "pin") screen = renderPIN();
  else if (ui.mode === "reject" && ui.doc) screen = renderReject();
  else screen = renderList();
  if (ui.mode !== "doc" || view.state !== "token") closeDocView();
  const main = document.getElementById("screen");
  if (main.firstChild === screen) return;
  // The same screen drawn again keeps its scrolling and its focus; the
  // list, when the official comes back to it, its scrolling and the letter
  // they left it from.
  const name = screenName();
  const same = name === lastScreen;
  if (lastScreen) scrolled[lastScreen] = main.scrollTop;
  const focused = same ? focusKey(document.activeElement) : name === "list" ? listFocus : null;
  if (lastScreen === "list" && !same) listFocus = focusKey(document.activeElement);
  main.replaceChildren(screen);
  lastScreen = name;
  main.scrollTop = same || name === "list" ? scrolled[name] || 0 : 0;
  const again = focused && screen.querySelector(focused);
  if (again && !again.disabled) again.focus({ preventScroll: !same && name !== "list" });
  else if (name === "pin" && !ui.busy) document.getElementById("pin").focus();
}
const scrolled = {};
let listFocus = null;

// renderSoon draws the screen once the present task is done, however many
// times it is asked meanwhile.
let renderQueued = false;
function renderSoon() {
  if (renderQueued) return;
  renderQueued = true;
  queueMicrotask(() => { renderQueued = false; render(); });
}

// A document drawn, failed or checked changes what may be chosen.
docStateListener = () => {
  if (view.state !== "token") return;
  if (ui.mode === "doc" && docView) docView.update();
  else if (ui.mode === "list") renderSoon();
};

function onView(next) {
  const before = view.state;
  view = next;
  if (view.boot && view.boot !== boot) refreshSession();
  if (view.lang) lang = view.lang;
  // Documents are read again for each token session.
  const cert = view.signer ? view.signer.cert_sha256 : null;
  if (view.state === "idle" || (cert && cert !== signerCert)) {
    resetDocStates();
    signerCert = cert;
  }
  if (before !== view.state) {
    if (view.state !== "token") { ui.mode = "list"; ui.doc = null; pin = ""; ui.reason = ""; }
    if (view.state === "idle") { ui.selected.clear(); ui.error = null; scrolled.list = 0; listFocus = null; }
  }
  // The reject screen keeps what is typed in ui.reason but not where the
  // caret stands: it is not redrawn while it is open.
  if (ui.mode === "reject" && view.state === "token") return;
  render();
}

async function start() {
  for (const l of ["id", "en"]) {
    const res = await fetch("/static/i18n/" + l + ".json", { credentials: "same-origin" });
    catalogs[l] = await res.json();
  }
  document.getElementById("lang").addEventListener("click", async () => {
    const next = lang === "id" ? "en" : "id";
    lang = next;
    closeDocView(); // its words are drawn once
    render();
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
  // A view the same as the last one is not drawn again: refreshes the
  // terminal coalesces arrive a moment after what changed was already
  // shown, and redrawing would only take the element under the
  // official's finger (or a test's click) away.
  let lastView = "";
  es.addEventListener("view", (e) => {
    offline.hidden = true;
    if (e.data === lastView) return;
    lastView = e.data;
    onView(JSON.parse(e.data));
  });
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
