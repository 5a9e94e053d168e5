// The Logs tab: what the job wrote (its stdout and stderr, then the collection's lines).
//
// While the job runs, the log streams in from GET /jobs/<id>/logs?follow=true (its last
// TAIL_LINES lines first, then each line as it is written), with the session's token in
// the Authorization header. The view follows the end as lines arrive until the reader
// scrolls up; "Follow the end" brings it back. At most LIVE_LINES lines stay on the page:
// older ones leave it, and the download has them all.
//
// Once the job has ended, the log is read a page at a time through GraphQL
// (`logs(offset, limit)`): the last page first, "Show earlier lines" adds the page before.
// The download link is the api's signed link to the whole log (asked for again when it
// has expired). Every line is a text node: what a job prints is never markup.

import { ApiError, authHeaders, gql, linkExpiry } from "./api.js";
import { errorState, loadingState } from "./components.js";
import { announce, h, replaceChildren, safeHref } from "./dom.js";
import { isFinished, plural } from "./format.js";

const TAIL_LINES = 1000;
const PAGE_LINES = 1000;
const LIVE_LINES = 5000;
const SHOWN_LINES = 20000;
const STICK_PX = 24;
const RETRY_MS = 3000;
const LINK_MARGIN_MS = 15000;

const PAGE_QUERY = `
query Logs($id: ID!, $offset: Int, $limit: Int) {
  phJob(where: {id: $id}) {
    id
    logs(offset: $offset, limit: $limit) { offset lines totalLines hasMore live source downloadUrl }
  }
}`;

export function logsPanel(panel, jobId, context) {
  let job = null;
  let visible = false;
  let mode = null; // "live" | "ended"
  let controller = null;
  let streaming = false;
  let retryTimer = null;
  let stick = true;
  let first = 0; // index of the first line shown (ended mode)
  let dropped = 0; // lines that left the page (live mode)
  let downloadHref = null;

  const status = h("p", { class: "log-status muted", role: "status", "aria-live": "polite" });
  const earlier = h(
    "button",
    { type: "button", class: "button button-quiet", hidden: true, onclick: () => loadEarlier() },
    "Show earlier lines",
  );
  const follow = h(
    "button",
    {
      type: "button",
      class: "button button-quiet",
      hidden: true,
      onclick: () => {
        stick = true;
        toEnd();
        follow.hidden = true;
      },
    },
    "Follow the end",
  );
  const download = h(
    "a",
    { class: "button", href: "#", download: "", onclick: (event) => onDownload(event) },
    "Download log",
  );
  const lines = h("div", {
    class: "log-view",
    role: "log",
    // A busy job would flood a screen reader: the status line says what changes.
    "aria-live": "off",
    tabindex: "0",
    "aria-label": "Job log",
    onscroll: () => {
      const atEnd = lines.scrollHeight - lines.scrollTop - lines.clientHeight < STICK_PX;
      stick = atEnd;
      follow.hidden = atEnd || mode !== "live";
    },
  });
  const body = h("div", { class: "log-body" });

  function stop() {
    controller?.abort();
    controller = null;
    window.clearTimeout(retryTimer);
    retryTimer = null;
  }

  function toEnd() {
    lines.scrollTop = lines.scrollHeight;
  }

  function lineEl(text) {
    return h("div", { class: "log-line" }, text);
  }

  function frame() {
    replaceChildren(
      body,
      h("div", { class: "log-head" }, status, h("div", { class: "actions" }, earlier, follow, download)),
      lines,
    );
    replaceChildren(panel, body);
  }

  function showError(error, retry) {
    if (error instanceof ApiError && error.unauthenticated) {
      context.onUnauthenticated(error);
      return;
    }
    const expired = error instanceof ApiError && error.code === "NOT_FOUND";
    const title = expired ? "The log is no longer kept." : "The log could not be loaded.";
    replaceChildren(panel, errorState(title, error, expired ? null : retry));
  }

  function setDownload(href) {
    downloadHref = safeHref(href);
    download.href = downloadHref ?? "#";
  }

  async function onDownload(event) {
    const expires = downloadHref ? linkExpiry(downloadHref) : null;
    if (downloadHref && (expires === null || expires - Date.now() > LINK_MARGIN_MS)) return;
    event.preventDefault();
    try {
      const data = await gql(PAGE_QUERY, { id: jobId, limit: 0 });
      setDownload(data.phJob.logs?.downloadUrl);
      if (downloadHref) download.click();
    } catch (error) {
      announce(`The log could not be downloaded: ${error.message}`);
    }
  }

  // -- live: the followed stream -----------------------------------------------------------

  function appendLines(texts) {
    if (!texts.length) return;
    const fragment = document.createDocumentFragment();
    for (const text of texts) fragment.append(lineEl(text));
    lines.append(fragment);
    const extra = lines.childElementCount - LIVE_LINES;
    for (let i = 0; i < extra; i += 1) lines.firstElementChild.remove();
    if (extra > 0) dropped += extra;
    liveStatus();
    if (stick) toEnd();
  }

  function liveStatus(ended = false) {
    const shown = lines.childElementCount;
    const lead = ended ? "The output has ended" : "Live: new lines appear as the job writes them";
    const note = dropped ? ` · ${plural(dropped, "earlier line", "earlier lines")} left the page; the download has them` : "";
    status.textContent = shown ? `${lead}${note}.` : ended ? "The job wrote nothing." : "Waiting for the job's first line…";
  }

  async function streamLive() {
    stop();
    controller = new AbortController();
    const { signal } = controller;
    mode = "live";
    stick = true;
    dropped = 0;
    frame();
    replaceChildren(lines);
    earlier.hidden = true;
    follow.hidden = true;
    liveStatus();
    gql(PAGE_QUERY, { id: jobId, limit: 0 }, { signal })
      .then((data) => setDownload(data.phJob.logs?.downloadUrl))
      .catch(() => {});
    let response;
    try {
      response = await fetch(`/jobs/${encodeURIComponent(jobId)}/logs?follow=true&tailLines=${TAIL_LINES}`, {
        headers: { Accept: "text/plain", ...authHeaders() },
        credentials: "omit",
        signal,
      });
    } catch (error) {
      if (error.name === "AbortError") return;
      retryLater();
      return;
    }
    if (!response.ok) {
      let message = `The api answered ${response.status}.`;
      let code = `HTTP_${response.status}`;
      try {
        const first = (await response.json()).errors?.[0];
        message = first?.message ?? message;
        code = first?.extensions?.code ?? code;
      } catch {
        // not JSON
      }
      showError(new ApiError(message, { code, status: response.status }), streamLive);
      return;
    }
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let partial = "";
    streaming = true;
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        const parts = (partial + decoder.decode(value, { stream: true })).split("\n");
        partial = parts.pop();
        appendLines(parts.map((part) => part.replace(/\r$/, "")));
      }
    } catch (error) {
      if (error.name === "AbortError") return;
      retryLater();
      return;
    } finally {
      streaming = false;
    }
    partial += decoder.decode();
    if (partial) appendLines([partial.replace(/\r$/, "")]);
    // The job has ended (or is ending): the page view takes over once its phase says so.
    liveStatus(true);
    if (job && isFinished(job.phase)) loadEnded();
  }

  function retryLater() {
    status.textContent = "The connection to the log was lost; trying again…";
    retryTimer = window.setTimeout(() => {
      if (visible && mode === "live") streamLive();
    }, RETRY_MS);
  }

  // -- ended: pages of lines ---------------------------------------------------------------

  function endedStatus(total) {
    const shown = lines.childElementCount;
    if (!total) {
      status.textContent = "The job wrote nothing.";
      return;
    }
    const range = shown === total ? `All ${plural(total, "line", "lines")}` : `Lines ${first + 1}–${first + shown} of ${total}`;
    status.textContent = shown >= SHOWN_LINES && first > 0 ? `${range}; download the log for the rest.` : `${range}.`;
  }

  async function loadEnded() {
    stop();
    controller = new AbortController();
    mode = "ended";
    replaceChildren(panel, loadingState("Loading the log…"));
    panel.setAttribute("aria-busy", "true");
    try {
      const data = await gql(PAGE_QUERY, { id: jobId, limit: PAGE_LINES }, { signal: controller.signal });
      const page = data.phJob.logs;
      frame();
      follow.hidden = true;
      first = page.offset;
      setDownload(page.downloadUrl);
      replaceChildren(lines, page.lines.map(lineEl));
      earlier.hidden = first === 0;
      endedStatus(page.totalLines);
      toEnd();
      lines.dataset.total = String(page.totalLines);
    } catch (error) {
      if (error.name === "AbortError") return;
      showError(error, loadEnded);
    } finally {
      panel.removeAttribute("aria-busy");
    }
  }

  async function loadEarlier() {
    const offset = Math.max(0, first - PAGE_LINES);
    earlier.disabled = true;
    try {
      const data = await gql(PAGE_QUERY, { id: jobId, offset, limit: first - offset }, { signal: controller?.signal });
      const page = data.phJob.logs;
      const before = lines.scrollHeight;
      const fragment = document.createDocumentFragment();
      for (const text of page.lines) fragment.append(lineEl(text));
      lines.prepend(fragment);
      lines.scrollTop += lines.scrollHeight - before; // keep the reader where they were
      first = page.offset;
      earlier.hidden = first === 0 || lines.childElementCount >= SHOWN_LINES;
      endedStatus(page.totalLines);
      announce(`${plural(page.lines.length, "earlier line", "earlier lines")} shown`);
    } catch (error) {
      if (error.name === "AbortError") return;
      if (error instanceof ApiError && error.unauthenticated) context.onUnauthenticated(error);
      else announce(`Earlier lines could not be loaded: ${error.message}`);
    } finally {
      earlier.disabled = false;
    }
  }

  // -- the tab's life ----------------------------------------------------------------------

  function start() {
    if (!job) return;
    if (isFinished(job.phase)) loadEnded();
    else streamLive();
  }

  return {
    /** The tab was opened: start showing the log (again, after it was hidden). */
    show(current) {
      job = current;
      visible = true;
      if (mode === null) start();
    },
    /** The tab was left: stop streaming (the log's stream holds a slot at the api). */
    hide() {
      visible = false;
      if (mode === "live") {
        stop();
        mode = null;
      }
    },
    /** The job as polled: when it ends, the live view gives way to the whole log. */
    update(current) {
      const endedNow = job && !isFinished(job.phase) && isFinished(current.phase);
      job = current;
      if (visible && endedNow && mode === "live" && !streaming) loadEnded();
    },
    dispose() {
      stop();
      visible = false;
    },
  };
}
