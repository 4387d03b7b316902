// Teken kiosk page: showing a document, within bounds. The official signs
// only what the screen showed, so a document the page cannot show — a kind
// of file it cannot draw, a PDF pdf.js refuses, a page that takes too long,
// a picture too large — is marked failed, and its letter cannot be chosen.
"use strict";

// limits bound the work one document may cost the page.
const limits = {
  fetchTimeoutMs: 20000, // fetching the bytes from the terminal
  loadTimeoutMs: 10000, // pdf.js parsing the document
  pageTimeoutMs: 10000, // drawing one page; then the render task is cancelled
  maxImageSize: 16 << 20, // pixels of one image inside a PDF (pdf.js maxImageSize)
  canvasMaxAreaInBytes: 64 << 20, // pdf.js's own canvases in the worker
  maxCanvasPixels: 16 << 20, // the page's canvas; a larger one is drawn coarser
  maxImagePixels: 40e6, // a picture document, by the size its header gives
  maxTextBytes: 2 << 20, // a text document
  checkWidth: 200, // CSS pixels of the pass that draws every page once
};

// The media types the page can show, as the terminal's view calls them
// renderable.
const renderableTypes = ["application/pdf", "image/png", "image/jpeg", "image/gif", "image/webp", "text/plain"];

function renderable(d) {
  if (typeof d.renderable === "boolean") return d.renderable;
  return renderableTypes.includes(String(d.media_type || "").split(";")[0].trim());
}

// docStates holds, for this token session, what the page learned of each
// document it showed: "checking" while pages are drawn, "ok" once every
// page was drawn, "failed" with a reason the official reads.
const docStates = new Map();
let docStateListener = () => {};

function docKey(job, d) {
  return job.id + "/" + d.index;
}

function docState(job, d) {
  if (d.available && !renderable(d)) return { status: "failed", reason: { code: "doc_reason_type" } };
  return docStates.get(docKey(job, d)) || { status: "new" };
}

function setDocState(key, st) {
  docStates.set(key, st);
  docStateListener(key, st);
}

// letterStatus says whether a letter may be chosen for signing: "failed"
// when a document could not be shown, "checking" while one is being drawn,
// "open" while a document the page can show was not opened (the terminal's
// viewed) and drawn in full here, "ready" otherwise.
function letterStatus(job) {
  let status = "ready";
  for (const d of job.documents || []) {
    if (!d.available) continue;
    const st = docState(job, d);
    if (st.status === "failed") return "failed";
    if (st.status === "checking") status = "checking";
    else if ((st.status !== "ok" || d.viewed !== true) && status === "ready") status = "open";
  }
  return status;
}

function resetDocStates() {
  for (const p of previews.values()) p.destroy();
  previews.clear();
  docStates.clear();
}

// withTimeout settles like p, or rejects with a TimeoutError after ms and
// then calls onTimeout to cancel the work. The timeout is settled first: a
// cancelled render task rejects its own promise at once, and the race must
// not take that for a cancellation by a newer drawing.
function withTimeout(p, ms, onTimeout) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => {
      const e = new Error("timed out after " + ms + " ms");
      e.name = "TimeoutError";
      reject(e);
      Promise.resolve().then(() => { try { if (onTimeout) onTimeout(); } catch (_) { /* already settled */ } });
    }, ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

// imageSize reads a picture's width and height from its header (PNG IHDR,
// GIF logical screen, JPEG SOFn, WebP VP8/VP8L/VP8X), so a picture that
// would decode to gigabytes is refused before it is decoded.
function imageSize(b) {
  const u32 = (i) => ((b[i] << 24) | (b[i + 1] << 16) | (b[i + 2] << 8) | b[i + 3]) >>> 0;
  const u16 = (i) => (b[i] << 8) | b[i + 1];
  const le16 = (i) => b[i] | (b[i + 1] << 8);
  const le24 = (i) => b[i] | (b[i + 1] << 8) | (b[i + 2] << 16);
  if (b.length > 24 && b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47) return [u32(16), u32(20)];
  if (b.length > 10 && b[0] === 0x47 && b[1] === 0x49 && b[2] === 0x46) return [le16(6), le16(8)];
  if (b.length > 4 && b[0] === 0xff && b[1] === 0xd8) {
    for (let i = 2; i + 9 < b.length;) {
      if (b[i] !== 0xff) { i++; continue; }
      const m = b[i + 1];
      if (m >= 0xc0 && m <= 0xcf && m !== 0xc4 && m !== 0xc8 && m !== 0xcc) return [u16(i + 7), u16(i + 5)];
      if (m === 0xd8 || m === 0x01 || (m >= 0xd0 && m <= 0xd7)) { i += 2; continue; }
      i += 2 + u16(i + 2);
    }
    return null;
  }
  if (b.length > 30 && b[8] === 0x57 && b[9] === 0x45 && b[10] === 0x42 && b[11] === 0x50) {
    const chunk = String.fromCharCode(b[12], b[13], b[14], b[15]);
    if (chunk === "VP8 ") return [le16(26) & 0x3fff, le16(28) & 0x3fff];
    if (chunk === "VP8L") {
      const bits = b[21] | (b[22] << 8) | (b[23] << 16) | (b[24] << 24);
      return [(bits & 0x3fff) + 1, ((bits >> 14) & 0x3fff) + 1];
    }
    if (chunk === "VP8X") return [le24(24) + 1, le24(27) + 1];
  }
  return null;
}

let pdfjs = null;
async function loadPDFJS() {
  if (!pdfjs) {
    pdfjs = await import("/static/vendor/pdfjs/pdf.min.mjs");
    pdfjs.GlobalWorkerOptions.workerSrc = "/static/vendor/pdfjs/pdf.worker.min.mjs";
  }
  return pdfjs;
}

// previews are the documents opened in this token session, by docKey.
const previews = new Map();

function previewOf(job, d) {
  const key = docKey(job, d);
  let p = previews.get(key);
  if (!p || p.destroyed) {
    p = new Preview(job, d);
    previews.set(key, p);
  }
  return p;
}

// A Preview is one document opened in the page: its bytes fetched once
// (which the terminal records as viewed), then drawn page by page, each
// within limits.pageTimeoutMs.
class Preview {
  constructor(job, d) {
    this.key = docKey(job, d);
    this.url = "/api/documents/" + encodeURIComponent(job.id) + "/" + d.index;
    const mt = String(d.media_type || "").split(";")[0].trim();
    this.kind = !renderable(d) ? "none" : mt === "application/pdf" ? "pdf" : mt.startsWith("image/") ? "image" : "text";
    this.numPages = 1;
    this.pagesOK = new Set();
    this.destroyed = false;
    this.loading = null;
    this.checking = null;
  }

  failed() {
    const st = docStates.get(this.key);
    return st && st.status === "failed" ? st : null;
  }

  fail(code, params) {
    if (!this.failed()) setDocState(this.key, { status: "failed", reason: { code, params } });
    this.destroy();
  }

  // release says the document view no longer shows the document: once
  // every page was checked, pdf.js and its worker are let go (the state
  // stays), so a list of letters read does not keep a worker each.
  release() {
    this.inUse = false;
    const done = () => { if (!this.inUse && !this.destroyed) this.destroy(); };
    if (this.checking) { this.checking.then(done); return; }
    // Closed before its pages were checked: to be opened again.
    const st = docStates.get(this.key);
    if (st && st.status === "checking") setDocState(this.key, { status: "new" });
    done();
  }

  destroy() {
    this.destroyed = true;
    if (this.pdf) { this.pdf.destroy().catch(() => {}); this.pdf = null; }
    if (this.loadingTask) { this.loadingTask.destroy().catch(() => {}); this.loadingTask = null; }
    if (this.blobURL) { URL.revokeObjectURL(this.blobURL); this.blobURL = null; }
  }

  // load fetches the document and opens it; it resolves to false when the
  // document failed (the state says why) and throws when the terminal could
  // not hand it over (the official may try again).
  load() {
    if (!this.loading) this.loading = this.doLoad().catch((err) => { this.loading = null; throw err; });
    return this.loading;
  }

  async doLoad() {
    if (this.kind === "none") return false;
    if (!docStates.has(this.key) || docStates.get(this.key).status === "new") setDocState(this.key, { status: "checking" });
    const ac = new AbortController();
    let bytes;
    try {
      const res = await withTimeout(fetch(this.url, { credentials: "same-origin", signal: ac.signal }), limits.fetchTimeoutMs, () => ac.abort());
      if (!res.ok) throw new Error("document " + res.status);
      bytes = new Uint8Array(await withTimeout(res.arrayBuffer(), limits.fetchTimeoutMs, () => ac.abort()));
    } catch (err) {
      // Not the document's fault: it stays to be opened again.
      if (docStates.get(this.key) && docStates.get(this.key).status === "checking") setDocState(this.key, { status: "new" });
      throw err;
    }
    if (this.destroyed) return false;
    if (this.kind === "text") return this.loadText(bytes);
    if (this.kind === "image") return this.loadImage(bytes);
    return this.loadPDF(bytes);
  }

  loadText(bytes) {
    if (bytes.length > limits.maxTextBytes) { this.fail("doc_reason_large"); return false; }
    this.text = new TextDecoder("utf-8").decode(bytes);
    this.pagesOK.add(1);
    setDocState(this.key, { status: "ok" });
    return true;
  }

  async loadImage(bytes) {
    const size = imageSize(bytes);
    if (!size) { this.fail("doc_reason_broken"); return false; }
    if (size[0] * size[1] > limits.maxImagePixels || !size[0] || !size[1]) { this.fail("doc_reason_large"); return false; }
    this.blobURL = URL.createObjectURL(new Blob([bytes]));
    const img = new Image();
    img.src = this.blobURL;
    try {
      await withTimeout(img.decode(), limits.pageTimeoutMs);
    } catch (err) {
      if (this.destroyed) return false;
      console.error(err);
      this.fail(err.name === "TimeoutError" ? "doc_reason_slow" : "doc_reason_broken", { page: 1, s: limits.pageTimeoutMs / 1000 });
      return false;
    }
    if (this.destroyed) return false;
    this.image = img;
    this.imageSize = size;
    this.pagesOK.add(1);
    setDocState(this.key, { status: "ok" });
    return true;
  }

  async loadPDF(data) {
    try {
      const lib = await loadPDFJS();
      this.loadingTask = lib.getDocument({
        data, isEvalSupported: false, enableXfa: false, stopAtErrors: true,
        maxImageSize: limits.maxImageSize, canvasMaxAreaInBytes: limits.canvasMaxAreaInBytes,
        standardFontDataUrl: "/static/vendor/pdfjs/standard_fonts/",
      });
      const task = this.loadingTask;
      const pdf = await withTimeout(task.promise, limits.loadTimeoutMs, () => task.destroy());
      if (this.destroyed) { pdf.destroy().catch(() => {}); return false; }
      this.pdf = pdf;
      this.numPages = pdf.numPages;
      return true;
    } catch (err) {
      if (this.destroyed) return false; // closed meanwhile
      console.error(err);
      if (err.name === "TimeoutError") this.fail("doc_reason_slow", { page: 1, s: limits.loadTimeoutMs / 1000 });
      else this.fail("doc_reason_broken");
      return false;
    }
  }

  // drawPage draws page n into canvas, cssWidth CSS pixels wide, within
  // the page time limit; it returns the viewport in CSS pixels, or null
  // when the document failed or was closed or the drawing was cancelled
  // through holder.task (a newer one took over).
  async drawPage(n, canvas, cssWidth, holder) {
    if (this.destroyed || !this.pdf) return null;
    holder = holder || {};
    try {
      const page = await withTimeout(this.pdf.getPage(n), limits.pageTimeoutMs);
      const base = page.getViewport({ scale: 1 });
      const css = page.getViewport({ scale: cssWidth / base.width });
      let ratio = window.devicePixelRatio || 1;
      const area = css.width * css.height * ratio * ratio;
      if (area > limits.maxCanvasPixels) ratio *= Math.sqrt(limits.maxCanvasPixels / area);
      const viewport = page.getViewport({ scale: (cssWidth / base.width) * ratio });
      canvas.width = Math.max(1, Math.floor(viewport.width));
      canvas.height = Math.max(1, Math.floor(viewport.height));
      canvas.style.width = Math.round(css.width) + "px";
      canvas.style.height = Math.round(css.height) + "px";
      const task = page.render({ canvasContext: canvas.getContext("2d"), viewport });
      holder.task = task;
      await withTimeout(task.promise, limits.pageTimeoutMs, () => task.cancel());
      this.pagesOK.add(n);
      return css;
    } catch (err) {
      if (err && err.name === "RenderingCancelledException" && !this.destroyed) return null; // a newer drawing took over
      if (this.destroyed) return null;
      console.error(err);
      if (err.name === "TimeoutError") this.fail("doc_reason_slow", { page: n, s: limits.pageTimeoutMs / 1000 });
      else this.fail("doc_reason_broken");
      return null;
    } finally {
      holder.task = null;
    }
  }

  // check draws every page not drawn yet, small and one at a time, so a
  // page the official did not turn to cannot hide a failure; the document
  // is ok once each page was drawn.
  check() {
    if (!this.checking) {
      this.checking = (async () => {
        // Checked in full when it was opened before.
        if ((docStates.get(this.key) || {}).status === "ok") return;
        for (let n = 1; n <= this.numPages; n++) {
          if (this.destroyed) return;
          if (this.pagesOK.has(n)) continue;
          setDocState(this.key, { status: "checking", page: n, pages: this.numPages });
          const c = document.createElement("canvas");
          const css = await this.drawPage(n, c, limits.checkWidth);
          c.width = c.height = 0;
          if (!css) return;
        }
        if (!this.destroyed && !this.failed()) setDocState(this.key, { status: "ok" });
      })();
    }
    return this.checking;
  }
}
