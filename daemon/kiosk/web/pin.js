// Teken kiosk page: the PIN screen. It names the letters it will sign, says
// the tries left once, and takes the PIN from the on-screen keypad or the
// keyboard alone: digits (and letters), Backspace, Enter; Escape cancels.
// The PIN lives only in `pin` until it is sent, and is cleared right after.
"use strict";

let pin = "";
// The most letters named on the PIN screen; the rest are counted.
const pinNamed = 3;

function renderPIN() {
  const jobs = ui.pinJobs.map(jobByID).filter(Boolean);
  if (!jobs.length) { ui.mode = "list"; return renderList(); }
  const ids = jobs.map((j) => j.id);
  const tries = view.tries_left;
  const last = tries === 1;
  const err = ui.error;
  // The error of a wrong PIN says the tries left already.
  const saysTries = err && (err.code === "err_wrong_pin" || err.code === "err_last_attempt");
  const input = el("input", { type: "password", id: "pin", inputmode: "numeric", autocomplete: "off", maxlength: "8",
    "aria-label": t("pin_title"), "aria-describedby": "pin-letters",
    oninput: (e) => { pin = e.target.value.replace(/[^0-9A-Za-z]/g, "").slice(0, 8); e.target.value = pin; } });
  input.value = pin;
  const put = (k) => { if (pin.length < 8) { pin += k; input.value = pin; } };
  const back = () => { pin = pin.slice(0, -1); input.value = pin; };
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
      // A wrong or malformed PIN keeps the PIN screen; so does a refusal
      // of the page's old token (tekend restarted) or no answer: the
      // official types the PIN again. Anything else goes back to the list.
      if (!["err_wrong_pin", "err_last_attempt", "err_pin_format", "err_session_stale", "err_no_answer"].includes(res.error.code)) {
        ui.mode = "list";
      }
      render();
      return;
    }
    ids.forEach((id) => ui.selected.delete(id));
    ui.error = null; ui.mode = "list"; render();
  };
  const key = (k) => el("button", { type: "button", class: "key", "data-key": k, onclick: () => put(k) }, k);
  const onKey = (e) => {
    if (e.key === "Escape") { e.preventDefault(); pin = ""; goBack(); return; }
    if (e.target === input) {
      if (e.key === "Enter") { e.preventDefault(); submit(); }
      return; // the input takes digits and Backspace itself
    }
    if (e.target.closest && e.target.closest("button, input[type=checkbox]") && (e.key === "Enter" || e.key === " ")) return;
    if (/^[0-9A-Za-z]$/.test(e.key) && !e.ctrlKey && !e.metaKey && !e.altKey) { e.preventDefault(); put(e.key); }
    else if (e.key === "Backspace") { e.preventDefault(); back(); }
    else if (e.key === "Enter") { e.preventDefault(); submit(); }
  };
  const named = jobs.slice(0, pinNamed);
  const box = el("div", { class: "screen pinscreen", "data-state": "pin", onkeydown: onKey },
    el("div", { class: "pin-info" },
      el("h1", { class: "big" }, t("pin_title")),
      el("div", { id: "pin-letters" },
        el("p", { class: "pin-for" }, tn("pin_for_letters", jobs.length)),
        el("ul", { class: "pin-titles" }, named.map((j) => el("li", { "data-pin-job": j.id }, j.title)),
          jobs.length > named.length ? el("li", { class: "more" }, tn("pin_more_letters", jobs.length - named.length)) : null)),
      errorBox(err),
      !saysTries && tries != null && !last ? el("p", { id: "tries", class: "hint" }, t("tries_left", { n: tries })) : null,
      last && !(err && err.code === "err_last_attempt") ? el("div", { id: "tries", class: "warning" }, t("last_attempt_warning")) : null,
      last ? el("label", { class: "confirm" }, el("input", { type: "checkbox", id: "confirm-last", checked: ui.confirmLast,
        onchange: (e) => { ui.confirmLast = e.target.checked; } }), " " + t("last_attempt_confirm")) : null,
      el("p", { class: "hint" }, t("pin_hint"))),
    el("div", { class: "pin-entry" },
      input,
      el("div", { class: "keypad", role: "group", "aria-label": t("pin_keypad") },
        ["1", "2", "3", "4", "5", "6", "7", "8", "9"].map(key),
        el("button", { type: "button", class: "key", id: "pin-back", "aria-label": t("pin_backspace"), onclick: back }, "⌫"),
        key("0"),
        el("button", { type: "button", class: "key small", id: "pin-clear", onclick: () => { pin = ""; input.value = ""; } }, t("pin_clear"))),
      el("div", { class: "bar" },
        el("button", { type: "button", id: "pin-cancel", onclick: () => { pin = ""; goBack(); } }, t("cancel")),
        el("button", { type: "button", class: "primary", id: "pin-submit", disabled: ui.busy, onclick: submit }, t("pin_submit")))));
  return box;
}
