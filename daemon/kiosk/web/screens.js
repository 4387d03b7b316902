// Teken kiosk page: the screens that show the terminal's state — idle,
// reading, the letters, reject, signing, done. The document view is in
// docview.js, the PIN screen in pin.js.
"use strict";

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

function errorBox(err) {
  if (!err) return null;
  return el("div", { class: "error", role: "alert", "data-error": err.code }, t(err.code, err.params));
}

function signerBox() {
  const s = view.signer || {};
  return el("div", { class: "signer" },
    el("div", {}, el("span", { class: "label" }, t("signer_label")), " ", el("b", { id: "signer-name" }, s.name || "")),
    s.nip ? el("div", {}, el("span", { class: "label" }, t("nip_label")), " ", el("b", {}, s.nip)) : null);
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
      el("h1", { class: "big" }, t("idle_unavailable_title")),
      partsBox());
  }
  return el("div", { class: "center", "data-state": "idle" },
    el("div", { class: "tap", "aria-hidden": "true" }),
    el("h1", { class: "big" }, t("idle_title")),
    el("p", { class: "hint" }, t("idle_hint")),
    partsBox());
}

function renderReading() {
  return el("div", { class: "center", "data-state": "reading" }, el("h1", { class: "big" }, t("reading_token")));
}

// jobByID finds a letter of the current view.
function jobByID(id) {
  return (view.jobs || []).find((j) => j.id === id) || null;
}

// canPick says whether the official may choose the letter for signing now.
function canPick(job) {
  return !!view.can_sign && letterStatus(job) === "ready";
}

// firstToOpen is the document the letter's Open button shows: the first
// one still to be read, else the first one the page has.
function firstToOpen(job) {
  const shown = (job.documents || []).filter((d) => d.available);
  return shown.find((d) => docState(job, d).status !== "ok" || d.viewed !== true) || shown[0] || null;
}

function openDoc(job, d, from) {
  ui.mode = "doc"; ui.doc = { jobID: job.id, index: d.index }; ui.back = from || "list"; ui.error = null;
  render();
}

function openReject(job, from) {
  ui.mode = "reject"; ui.doc = { jobID: job.id, index: ui.doc && ui.doc.jobID === job.id ? ui.doc.index : null };
  ui.back = from || "list"; ui.error = null; ui.reason = "";
  render();
}

function openPIN(ids, from) {
  ui.pinJobs = ids; ui.mode = "pin"; ui.back = from || "list"; ui.error = null; pin = ""; ui.confirmLast = false;
  render();
}

// goBack leaves the PIN or reject screen for the screen it came from.
function goBack() {
  ui.mode = ui.back === "doc" && ui.doc && jobByID(ui.doc.jobID) ? "doc" : "list";
  ui.error = null; pin = ""; ui.reason = "";
  render();
}

// statusText says in words where a letter stands (letterStatus).
function statusText(status) {
  if (status === "failed") return t("letter_failed");
  if (status === "checking") return t("letter_checking");
  if (status === "open") return t("letter_open_first");
  return t("letter_ready");
}

function letterRow(job) {
  const status = letterStatus(job);
  const pickable = canPick(job);
  const checked = pickable && ui.selected.has(job.id);
  const docs = job.documents || [];
  const open = firstToOpen(job);
  const statusID = "status-" + job.id;
  const fields = (job.fields || []).filter((f) => f && f.label);
  return el("article", { class: "letter" + (checked ? " selected" : ""), "data-job": job.id, "data-status": status,
    "data-failed": status === "failed" },
    el("label", { class: "pick" },
      el("input", { type: "checkbox", checked, disabled: !pickable, "aria-label": t("pick_letter", { title: job.title }),
        "aria-describedby": statusID,
        onchange: (e) => { e.target.checked ? ui.selected.add(job.id) : ui.selected.delete(job.id); render(); } })),
    el("div", { class: "body" },
      el("h2", { class: "title" }, job.title),
      el("div", { class: "meta" },
        el("span", {}, t("col_number") + ": " + (job.number || "—")),
        el("span", {}, t("col_sender") + ": " + (job.sender || "—")),
        job.expires_at ? el("span", { class: "due" }, t("due_date", { date: fmtDate(job.expires_at) })) : null),
      fields.length ? el("div", { class: "fields" },
        fields.map((f) => el("span", { "data-field": f.label }, f.label + ": " + (f.value || "—")))) : null,
      el("div", { class: "status status-" + status, id: statusID },
        tn("documents_count", docs.length) + " · " + statusText(status))),
    el("div", { class: "row-actions" },
      open ? el("button", { type: "button", "data-open": job.id + "/" + open.index, onclick: () => openDoc(job, open) }, t("open_document")) : null,
      el("button", { type: "button", class: "danger", "data-reject": job.id, onclick: () => openReject(job) }, t("reject"))));
}

function renderList() {
  const jobs = view.jobs || [];
  // The list holds the most urgent letters only; jobs_total counts all.
  const total = Math.max(view.jobs_total || 0, jobs.length);
  ui.selected = new Set([...ui.selected].filter((id) => { const j = jobByID(id); return j && canPick(j); }));
  const n = ui.selected.size;
  const max = view.max_batch || jobs.length;
  const notReady = jobs.some((j) => letterStatus(j) !== "ready");
  return el("div", { class: "screen list", "data-state": "token" },
    signerBox(),
    errorBox(ui.error || view.error),
    partsBox(),
    view.notice ? el("div", { class: "warning" }, t(view.notice.code, view.notice.params)) : null,
    el("h1", { class: "big", id: "waiting" }, jobs.length ? tn("letters_waiting", total) : t("no_letters")),
    el("div", { class: "letters" }, jobs.map(letterRow)),
    total > jobs.length ? el("p", { class: "bar-hint", id: "more-letters" }, tn("list_more_letters", total - jobs.length)) : null,
    jobs.length ? el("div", { class: "bar", id: "list-bar" },
      notReady ? el("p", { class: "bar-hint", id: "open-first" }, t("list_open_first")) : null,
      el("button", { type: "button", id: "select-all", disabled: !view.can_sign || !jobs.some(canPick),
        onclick: () => { jobs.filter(canPick).slice(0, max).forEach((j) => ui.selected.add(j.id)); render(); } }, t("select_all")),
      el("button", { type: "button", class: "primary", id: "sign", disabled: !view.can_sign || n === 0,
        onclick: () => openPIN([...ui.selected], "list") }, n ? tn("sign_selected", n) : t("sign"))) : null);
}

// renderReject asks for an optional reason, on as many lines as the official
// likes. What is typed lives in ui.reason, so a view pushed meanwhile (which
// re-renders the screen) does not lose it.
function renderReject() {
  const job = jobByID(ui.doc.jobID);
  if (!job) { ui.mode = "list"; return renderList(); }
  const reason = el("textarea", { id: "reject-reason", placeholder: t("reject_reason"), rows: "4",
    maxlength: String(reasonMax), "aria-label": t("reject_reason"), wrap: "soft",
    oninput: (e) => { ui.reason = e.target.value; } });
  reason.value = ui.reason;
  setTimeout(() => reason.focus(), 0);
  return el("div", { class: "screen narrow", "data-state": "reject" },
    el("h1", { class: "big" }, t("reject_title")),
    el("p", { class: "subject" }, job.title),
    errorBox(ui.error),
    reason,
    el("div", { class: "bar" },
      el("button", { type: "button", id: "reject-cancel", onclick: goBack }, t("cancel")),
      el("button", { type: "button", class: "danger", id: "reject-confirm", disabled: ui.busy, onclick: async () => {
        ui.reason = reason.value;
        ui.busy = true; render();
        const res = await post("/api/reject", { job_id: job.id, reason: ui.reason });
        ui.busy = false;
        if (res.error) { ui.error = res.error; render(); return; }
        ui.selected.delete(job.id);
        ui.mode = "list"; ui.doc = null; ui.error = null; ui.reason = ""; render();
      } }, t("reject_confirm"))));
}

function renderSigning() {
  const p = view.progress || { done: 0, total: 0 };
  const pct = p.total ? Math.round((100 * p.done) / p.total) : 0;
  return el("div", { class: "center", "data-state": "signing" },
    el("h1", { class: "big" }, t("signing_title")),
    el("p", { class: "hint" }, t("signing_hint")),
    el("div", { class: "progress", role: "progressbar", "aria-valuemin": "0", "aria-valuemax": String(p.total),
      "aria-valuenow": String(p.done), "aria-label": t("signing_title") }, el("div", { style: "width:" + pct + "%" })),
    el("p", {}, t("signing_progress", { done: p.done, total: p.total })));
}

function renderDone() {
  const r = view.result || {};
  const partial = r.left > 0;
  return el("div", { class: "center", "data-state": "done" },
    el("h1", { class: partial ? "big" : "big ok" }, partial ? t("stopped_title") : t("done_title")),
    partial ? el("div", { class: "warning", id: "done-partial" }, t("signed_partial", { signed: r.signed, left: r.left }))
      : r.signed ? el("p", { id: "done-signed" }, tn("done_signed", r.signed)) : null,
    errorBox(view.error),
    partsBox(),
    partial ? null : el("p", { class: "hint" }, t("done_remove")),
    el("button", { type: "button", class: "primary", id: "done-back", onclick: () => post("/api/dismiss", {}, { retry: true }) }, t("back")));
}
