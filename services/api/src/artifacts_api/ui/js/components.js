// Small pieces every view uses: phase badges, times, loading and error states, polling.

import { h } from "./dom.js";
import { formatTime, relativeTime } from "./format.js";

const PHASE_CLASS = {
  Pending: "waiting",
  Preparing: "waiting",
  Running: "running",
  Succeeded: "ok",
  Failed: "bad",
  Cancelled: "neutral",
  Unknown: "neutral",
};

/** The phase as a badge: its colour helps, its text says it (colour is never the only sign). */
export function phaseBadge(phase) {
  const kind = PHASE_CLASS[phase] ?? "neutral";
  return h("span", { class: `badge badge-${kind}`, dataset: { phase } }, phase);
}

/** A <time> showing a locale date (or "in 6 days"), with the exact UTC moment as a title. */
export function timeEl(moment, { relative = false, seconds = false } = {}) {
  if (!moment) return h("span", { class: "muted" }, "—");
  const shown = relative ? relativeTime(moment) : formatTime(moment, { seconds });
  return h(
    "time",
    { datetime: moment.toISOString(), title: relative ? formatTime(moment, { seconds: true }) : moment.toISOString() },
    shown,
  );
}

export function loadingState(text) {
  return h("p", { class: "state state-loading", role: "status", "aria-live": "polite" }, h("span", { class: "spinner", "aria-hidden": "true" }), text);
}

/** An error the reader can act on: what happened, and a button that tries again. */
export function errorState(title, error, onRetry) {
  const retry = h("button", { type: "button", class: "button", onclick: onRetry }, "Retry");
  return h(
    "div",
    { class: "notice notice-error", role: "alert" },
    h("p", { class: "notice-title" }, title),
    h("p", {}, error?.message ?? String(error)),
    onRetry ? h("div", { class: "actions" }, retry) : null,
  );
}

/**
 * Call `tick` now and then every `intervalMs` while `active()` holds, skipping while the tab
 * is hidden (and catching up when it shows again). `stop()` ends it for good.
 */
export function poller(tick, intervalMs, active = () => true) {
  let timer = null;
  let stopped = false;
  let running = false;
  const schedule = () => {
    if (stopped) return;
    window.clearTimeout(timer);
    timer = window.setTimeout(run, intervalMs);
  };
  const run = async () => {
    if (stopped || running) return;
    if (document.hidden || !active()) {
      schedule();
      return;
    }
    running = true;
    try {
      await tick();
    } finally {
      running = false;
      schedule();
    }
  };
  const onVisible = () => {
    if (!document.hidden) run();
  };
  document.addEventListener("visibilitychange", onVisible);
  schedule();
  return {
    stop() {
      stopped = true;
      window.clearTimeout(timer);
      document.removeEventListener("visibilitychange", onVisible);
    },
    now: run,
  };
}
