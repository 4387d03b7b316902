// Teken kiosk page: the document view. One letter's documents, one page at
// a time, with page turning across its documents, zoom, the document's
// fingerprint, and the letter's own sign and reject. A signed PDF's page
// with the signature block opens first, scrolled to the block's mark.
"use strict";

// docView is the open DocView. It outlives renders, so a view pushed by the
// terminal does not redraw the page or lose the official's scrolling.
let docView = null;

const zoomSteps = [0.5, 0.67, 0.8, 1, 1.25, 1.5, 2, 2.5, 3];
// The widest a page is drawn before the official zooms, in CSS pixels.
const readableWidth = 1400;

function renderDoc() {
  const job = jobByID(ui.doc.jobID);
  const d = job && (job.documents || []).find((x) => x.index === ui.doc.index && x.available);
  if (!job || !d) {
    closeDocView();
    ui.mode = "list";
    return renderList();
  }
  if (!docView || docView.jobID !== job.id || docView.index !== d.index) {
    closeDocView();
    docView = new DocView(job, d);
  }
  docView.update();
  return docView.root;
}

function closeDocView() {
  if (docView) docView.close();
  docView = null;
}

class DocView {
  constructor(job, d) {
    this.jobID = job.id;
    this.index = d.index;
    this.preview = previewOf(job, d);
    this.preview.inUse = true;
    this.block = d.format === "pades" && d.block ? d.block : null;
    this.page = this.block ? this.block.page : 1;
    this.zoom = null; // null: fit the width, up to readableWidth
    this.gen = 0;
    this.holder = {};
    this.followMark = !!this.block;
    this.fetchError = false;
    const stop = () => { this.followMark = false; };
    this.area = el("div", { class: "preview", id: "pages", tabindex: "0", role: "region",
      "aria-label": t("document_area"), onwheel: stop, ontouchstart: stop, onkeydown: stop, onpointerdown: stop });
    this.title = el("h1", { class: "doc-title" });
    this.docLine = el("p", { class: "doc-line" });
    this.prev = el("button", { type: "button", id: "page-prev", onclick: () => this.turn(-1) }, t("page_prev"));
    this.next = el("button", { type: "button", id: "page-next", onclick: () => this.turn(1) }, t("page_next"));
    this.pageLabel = el("span", { class: "page-label", id: "page-label", "aria-live": "polite" });
    this.zoomOut = el("button", { type: "button", id: "zoom-out", onclick: () => this.setZoom(-1) }, t("zoom_out"));
    this.zoomIn = el("button", { type: "button", id: "zoom-in", onclick: () => this.setZoom(1) }, t("zoom_in"));
    this.zoomFit = el("button", { type: "button", id: "zoom-fit", onclick: () => this.setZoom(0) }, t("zoom_fit"));
    this.status = el("div", { class: "doc-status", id: "doc-status", "aria-live": "polite" });
    this.hash = el("p", { class: "hash", id: "fingerprint" });
    this.sign = el("button", { type: "button", class: "primary", id: "doc-sign",
      onclick: () => { const j = jobByID(this.jobID); if (j && canPick(j)) openPIN([j.id], "doc"); } }, t("sign_this"));
    this.root = el("div", { class: "screen docview", "data-state": "document" },
      el("div", { class: "doc-head" }, this.title, this.docLine),
      el("div", { class: "toolbar", role: "toolbar", "aria-label": t("document_tools") },
        el("div", { class: "group" }, this.prev, this.pageLabel, this.next),
        el("div", { class: "group" }, this.zoomOut, this.zoomIn, this.zoomFit)),
      this.status,
      this.area,
      this.hash,
      el("div", { class: "bar" },
        el("button", { type: "button", id: "doc-close", onclick: () => { closeDocView(); ui.mode = "list"; ui.doc = null; render(); } }, t("close_document")),
        el("button", { type: "button", class: "danger", id: "doc-reject",
          onclick: () => { const j = jobByID(this.jobID); if (j) openReject(j, "doc"); } }, t("reject")),
        this.sign));
    this.width = 0;
    this.resize = new ResizeObserver(() => {
      const w = this.area.clientWidth;
      if (w && w !== this.width) { this.width = w; this.draw(); }
    });
    this.resize.observe(this.area);
  }

  job() { return jobByID(this.jobID); }

  // docs are the letter's documents the page has the bytes of.
  docs() {
    const j = this.job();
    return j ? (j.documents || []).filter((d) => d.available) : [];
  }

  close() {
    this.gen++;
    this.resize.disconnect();
    if (this.holder.task) { try { this.holder.task.cancel(); } catch (_) { /* done */ } }
    this.preview.release();
  }

  // turn goes one page on or back, into the next or previous document at
  // either end of this one.
  turn(step) {
    const p = this.preview;
    const n = this.page + step;
    if (n >= 1 && n <= p.numPages && !p.failed()) {
      this.page = n;
      this.followMark = this.block && this.block.page === n;
      this.update();
      this.draw();
      return;
    }
    const docs = this.docs();
    const i = docs.findIndex((d) => d.index === this.index);
    const other = docs[i + step];
    if (!other) return;
    ui.doc = { jobID: this.jobID, index: other.index };
    closeDocView();
    docView = new DocView(this.job(), other);
    if (step < 0) docView.page = -1; // the last page, once known
    render();
  }

  // setZoom goes one step larger (dir > 0) or smaller (dir < 0), or to
  // the width of the preview (dir 0).
  setZoom(dir) {
    const cur = this.zoom == null ? this.defaultZoom() : this.zoom;
    const next = dir === 0 ? 1
      : dir > 0 ? zoomSteps.find((z) => z > cur + 0.001)
      : zoomSteps.findLast((z) => z < cur - 0.001);
    if (next == null) return;
    this.zoom = next;
    this.update();
    this.draw();
  }

  fitWidth() {
    const cs = getComputedStyle(this.area);
    return Math.max(120, this.area.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight));
  }

  defaultZoom() {
    return Math.min(1, readableWidth / this.fitWidth());
  }

  cssWidth() {
    return Math.round(this.fitWidth() * (this.zoom == null ? this.defaultZoom() : this.zoom));
  }

  update() {
    const job = this.job();
    if (!job) return;
    const p = this.preview;
    const docs = this.docs();
    const i = docs.findIndex((d) => d.index === this.index);
    if (i < 0) return;
    const d = docs[i];
    const st = docState(job, d);
    this.title.textContent = job.title;
    this.docLine.textContent = (docs.length > 1 ? t("document_of", { n: i + 1, total: docs.length }) + " · " : "") + (d.name || "");
    const pages = p.kind === "pdf" && p.pdf ? p.numPages : 1;
    this.pageLabel.textContent = t("page_of", { page: Math.max(1, Math.min(this.page, pages)), pages });
    const failed = st.status === "failed";
    this.prev.disabled = !((this.page > 1 && !failed) || i > 0);
    this.next.disabled = !((this.page < pages && !failed) || i < docs.length - 1);
    const z = this.zoom == null ? this.defaultZoom() : this.zoom;
    this.zoomOut.disabled = failed || z <= zoomSteps[0] + 0.001 || p.kind === "none";
    this.zoomIn.disabled = failed || z >= zoomSteps[zoomSteps.length - 1] - 0.001 || p.kind === "none";
    this.zoomFit.disabled = failed || p.kind === "none";
    this.zoomFit.setAttribute("aria-pressed", String(this.zoom === 1));
    this.hash.replaceChildren(el("span", { class: "label" }, t("col_hash") + ": "),
      el("span", { class: "digest" }, String(d.sha256 || "").replace(/(.{8})(?=.)/g, "$1 ")));
    this.sign.disabled = !canPick(job);
    this.root.toggleAttribute("data-failed", failed);
    this.status.replaceChildren(...this.statusLine(job, st));
    if (failed) this.area.replaceChildren();
  }

  statusLine(job, st) {
    if (st.status === "failed") {
      return [el("div", { class: "error", role: "alert", "data-error": "err_unrenderable", id: "doc-failed" },
        el("p", {}, t("err_unrenderable")),
        el("p", { "data-reason": st.reason.code }, t(st.reason.code, st.reason.params)))];
    }
    if (this.fetchError) {
      return [el("div", { class: "error", role: "alert", "data-error": "err_document" }, t("err_document"), " ",
        el("button", { type: "button", onclick: () => { this.fetchError = false; this.draw(); } }, t("try_again")))];
    }
    if (st.status === "checking") {
      return [el("p", { class: "hint" }, st.page ? t("doc_checking_page", { page: st.page, pages: st.pages }) : t("letter_checking"))];
    }
    if (!view.can_sign) return [];
    const s = letterStatus(job);
    if (s === "ready") return [el("p", { class: "ok-line" }, t("doc_ready"))];
    if (s === "open") return [el("p", { class: "hint" }, t("doc_more_to_open"))];
    return [];
  }

  // draw shows the current page at the current width: drawn anew on a
  // new canvas, which replaces the old one once it is complete.
  async draw() {
    const gen = ++this.gen;
    const p = this.preview;
    if (this.holder.task) { try { this.holder.task.cancel(); } catch (_) { /* done */ } }
    this.area.setAttribute("data-rendering", "");
    let ok;
    try {
      ok = await p.load();
    } catch (err) {
      console.error(err);
      if (gen === this.gen) { this.fetchError = true; this.area.removeAttribute("data-rendering"); this.update(); }
      return;
    }
    if (gen !== this.gen) return;
    if (!ok) { this.area.removeAttribute("data-rendering"); this.update(); return; }
    if (this.page < 1) this.page = p.numPages;
    this.page = Math.min(this.page, p.numPages);
    const width = this.cssWidth();
    const forWidth = this.area.clientWidth;
    let node;
    if (p.kind === "pdf") {
      const canvas = el("canvas", { role: "img", "data-page": String(this.page),
        "aria-label": t("page_of", { page: this.page, pages: p.numPages }) });
      this.holder = {};
      const css = await p.drawPage(this.page, canvas, width, this.holder);
      if (gen !== this.gen) return;
      if (!css) { this.area.removeAttribute("data-rendering"); this.update(); return; }
      canvas.setAttribute("data-rendered", "");
      node = el("div", { class: "sheet" }, canvas);
      if (this.block && this.block.page === this.page) node.append(this.mark(css));
    } else if (p.kind === "image") {
      const [w] = p.imageSize;
      const img = el("img", { src: p.blobURL, class: "docimage", alt: t("document_picture", { name: this.docs().find((d) => d.index === this.index).name || "" }),
        "data-rendered": "" });
      img.style.width = (this.zoom == null ? Math.min(w, width) : width) + "px";
      node = el("div", { class: "sheet" }, img);
    } else {
      const pre = el("pre", { class: "doctext", "data-rendered": "" }, p.text);
      pre.style.fontSize = (this.zoom == null ? 1 : this.zoom) + "rem";
      node = pre;
    }
    this.area.replaceChildren(node);
    this.area.setAttribute("data-pages", String(p.numPages));
    this.area.setAttribute("data-for-width", String(forWidth));
    this.area.removeAttribute("data-rendering");
    if (this.followMark) this.scrollToMark();
    this.update();
    if (p.kind === "pdf") p.check();
  }

  // mark is where the visible signature block will stand once signed.
  mark(css) {
    const [x1, y1, x2, y2] = css.convertToViewportRectangle(this.block.rect);
    const m = el("div", { class: "block-mark", id: "block-mark" }, t("signature_block_here"));
    m.style.left = Math.min(x1, x2) + "px";
    m.style.top = Math.min(y1, y2) + "px";
    m.style.width = Math.abs(x2 - x1) + "px";
    m.style.height = Math.abs(y2 - y1) + "px";
    return m;
  }

  // scrollToMark scrolls the preview, and only the preview, so the mark
  // stands in its middle.
  scrollToMark() {
    const m = this.area.querySelector("#block-mark");
    if (!m) return;
    const a = this.area.getBoundingClientRect();
    const r = m.getBoundingClientRect();
    this.area.scrollTop += r.top - a.top - (a.height - r.height) / 2;
    this.area.scrollLeft += r.left - a.left - (a.width - r.width) / 2;
  }
}
