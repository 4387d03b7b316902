// Teken kiosk page: talking to the terminal. Every action is a same-origin
// POST with a JSON body and the page's CSRF token.
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
