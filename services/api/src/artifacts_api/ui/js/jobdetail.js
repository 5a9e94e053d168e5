// A job's page (`/jobs/<id>`): its phase, updated live while it runs, and three tabs,
// Summary, Artifacts and Logs (live while the job runs, see logs.js). The Artifacts tab
// opens only once the job has finished (Succeeded, Failed or Cancelled): before that
// there is nothing collected to show. `#logs` and `#artifacts` in the address open those
// tabs (the artifacts now, or as soon as the job finishes).
//
// Tabs follow the WAI-ARIA tabs pattern: arrow keys, Home and End move between tabs and
// select them; a disabled tab can be reached (so its reason can be read) but not selected.

import { ApiError, gql } from "./api.js";
import { errorState, loadingState, phaseBadge, poller, timeEl } from "./components.js";
import { artifactsPanel } from "./artifacts.js";
import { logsPanel } from "./logs.js";
import { announce, h, replaceChildren } from "./dom.js";
import { duration, instanceTypeText, isFinished, parseTime, spanInWords } from "./format.js";

const POLL_MS = 1500;

const JOB_QUERY = `
query Job($id: ID!) {
  phJob(where: {id: $id}) {
    id displayName groupName userName phase command image
    createTime startTime finishTime message cancel
    artifactRetentionSeconds artifactExpiredAt activeDeadlineSeconds
    instanceType { name displayName cpuLimit memoryLimit gpuLimit }
  }
}`;

const CANCEL_MUTATION = `
mutation Cancel($id: ID!) { cancelPhJob(where: {id: $id}) { id cancel } }`;

const TABS = ["summary", "artifacts", "logs"];

export function renderJobDetail(main, jobId, context) {
  document.title = `${jobId} · Job artifacts`;
  const controller = new AbortController();
  let job = null;
  let poll = null;
  let view = null;

  replaceChildren(
    main,
    h("p", { class: "breadcrumb" }, h("a", { href: "/", "data-nav": "" }, "← All jobs")),
    h("h1", {}, jobId),
    loadingState("Loading the job…"),
  );

  function wantedTab() {
    const named = window.location.hash.replace(/^#/, "");
    return TABS.includes(named) ? named : "summary";
  }

  async function fetchJob() {
    const data = await gql(JOB_QUERY, { id: jobId }, { signal: controller.signal });
    return data.phJob;
  }

  async function first() {
    try {
      job = await fetchJob();
    } catch (error) {
      if (error.name === "AbortError") return;
      if (error instanceof ApiError && error.unauthenticated) {
        context.onUnauthenticated(error);
        return;
      }
      const code = error instanceof ApiError ? error.code : "";
      const title =
        code === "NOT_FOUND" || code === "BAD_USER_INPUT"
          ? "There is no such job."
          : code === "FORBIDDEN"
            ? "This job belongs to a group you are not in."
            : "The job could not be loaded.";
      // Asking again cannot help with a job that is not there or not yours.
      const final = code === "NOT_FOUND" || code === "BAD_USER_INPUT" || code === "FORBIDDEN";
      const retry = final
        ? null
        : () => {
            replaceChildren(main, h("h1", {}, jobId), loadingState("Loading the job…"));
            first();
          };
      replaceChildren(
        main,
        h("p", { class: "breadcrumb" }, h("a", { href: "/", "data-nav": "" }, "← All jobs")),
        h("h1", {}, jobId),
        errorState(title, error, retry),
      );
      return;
    }
    const hadFocus = document.activeElement?.tagName === "H1";
    view = buildView(main, job, context, wantedTab());
    if (hadFocus) main.querySelector("h1")?.focus({ preventScroll: true });
    document.title = `${job.displayName} · Job artifacts`;
    poll = poller(tick, POLL_MS, () => !isFinished(job.phase));
  }

  async function tick() {
    try {
      const fresh = await fetchJob();
      const finishedNow = !isFinished(job.phase) && isFinished(fresh.phase);
      const phaseChanged = fresh.phase !== job.phase;
      job = fresh;
      view.update(job);
      if (phaseChanged) {
        announce(
          finishedNow
            ? `The job has ${job.phase === "Succeeded" ? "succeeded" : job.phase.toLowerCase()}; its artifacts can be opened.`
            : `The job is ${job.phase}.`,
        );
      }
      if (finishedNow && wantedTab() === "artifacts") view.select("artifacts", { focus: false });
    } catch (error) {
      if (error.name === "AbortError") return;
      if (error instanceof ApiError && error.unauthenticated) context.onUnauthenticated(error);
      // Otherwise the next tick tries again.
    }
  }

  const onHash = () => view?.select(wantedTab(), { focus: false, fromHash: true });
  window.addEventListener("hashchange", onHash);
  first();

  return () => {
    poll?.stop();
    controller.abort();
    view?.dispose();
    window.removeEventListener("hashchange", onHash);
  };
}

function buildView(main, initial, context, initialTab) {
  let job = initial;
  const badgeSlot = h("span", { class: "phase", "aria-live": "polite" }, phaseBadge(job.phase));
  const heading = h("h1", {}, job.displayName);
  const cancelSlot = h("span");

  const tabs = {};
  const panels = {};
  const labels = { summary: "Summary", logs: "Logs", artifacts: "Artifacts" };
  const hint = h("p", { id: "artifacts-hint", class: "tab-hint muted" });

  for (const name of TABS) {
    tabs[name] = h(
      "button",
      {
        type: "button",
        role: "tab",
        id: `tab-${name}`,
        class: "tab",
        "aria-controls": `panel-${name}`,
        "aria-selected": "false",
        tabindex: "-1",
        onclick: () => select(name, { focus: false, user: true }),
        onkeydown: onTabKey,
      },
      labels[name],
    );
    panels[name] = h("div", {
      role: "tabpanel",
      id: `panel-${name}`,
      class: "tabpanel",
      "aria-labelledby": `tab-${name}`,
      tabindex: "0",
      hidden: true,
    });
  }

  const summary = h("dl", { class: "summary" });
  panels.summary.append(summary);
  const artifacts = artifactsPanel(panels.artifacts, job.id, context);
  const logs = logsPanel(panels.logs, job.id, context);

  replaceChildren(
    main,
    h("p", { class: "breadcrumb" }, h("a", { href: "/", "data-nav": "" }, "← All jobs")),
    h(
      "div",
      { class: "page-head" },
      h("div", { class: "title-block" }, heading, h("p", { class: "job-meta" }, h("span", { class: "job-id" }, job.id), " · ", job.groupName)),
      h("div", { class: "head-side" }, badgeSlot, cancelSlot),
    ),
    h("div", { role: "tablist", "aria-label": "Job details", class: "tablist" }, TABS.map((name) => tabs[name])),
    hint,
    panels.summary,
    panels.artifacts,
    panels.logs,
  );

  let current = null;

  function artifactsEnabled() {
    return isFinished(job.phase);
  }

  function syncDisabled() {
    const enabled = artifactsEnabled();
    const tab = tabs.artifacts;
    if (enabled) {
      tab.removeAttribute("aria-disabled");
      tab.removeAttribute("aria-describedby");
      tab.removeAttribute("title");
      hint.hidden = true;
    } else {
      tab.setAttribute("aria-disabled", "true");
      tab.setAttribute("aria-describedby", "artifacts-hint");
      tab.setAttribute("title", "Available when the job has finished");
      hint.textContent = "Artifacts can be opened once the job has finished.";
      hint.hidden = false;
    }
  }

  function select(name, { focus = false, user = false, fromHash = false } = {}) {
    if (name === "artifacts" && !artifactsEnabled()) {
      if (user) announce("Artifacts can be opened once the job has finished.");
      if (current) return;
      // A deep link to #artifacts of a running job: show the summary, keep the fragment,
      // and open the artifacts when the job finishes.
      name = "summary";
      fromHash = true;
    }
    const changed = current !== name;
    current = name;
    for (const other of TABS) {
      const on = other === name;
      tabs[other].setAttribute("aria-selected", String(on));
      tabs[other].tabIndex = on ? 0 : -1;
      panels[other].hidden = !on;
    }
    if (focus) tabs[name].focus();
    if (!fromHash) {
      const hash = name === "summary" ? "" : `#${name}`;
      if (window.location.hash !== hash) {
        window.history.replaceState(window.history.state, "", window.location.pathname + window.location.search + hash);
      }
    }
    // The artifacts are asked for when the tab is opened; Refresh in the panel asks again.
    if (name === "artifacts" && (changed || user) && !artifacts.loaded) artifacts.load();
    if (name === "logs") logs.show(job);
    else logs.hide();
  }

  function onTabKey(event) {
    const index = TABS.indexOf(event.currentTarget.id.replace("tab-", ""));
    let next = null;
    if (event.key === "ArrowRight") next = (index + 1) % TABS.length;
    else if (event.key === "ArrowLeft") next = (index - 1 + TABS.length) % TABS.length;
    else if (event.key === "Home") next = 0;
    else if (event.key === "End") next = TABS.length - 1;
    if (next === null) return;
    event.preventDefault();
    const name = TABS[next];
    if (name === "artifacts" && !artifactsEnabled()) {
      // Reachable, so the reason it is disabled can be read; not selected.
      tabs[name].focus();
      return;
    }
    select(name, { focus: true, user: true });
  }

  function renderSummary() {
    const created = parseTime(job.createTime);
    const started = parseTime(job.startTime);
    const finished = parseTime(job.finishTime);
    const rows = [
      ["Phase", phaseBadge(job.phase)],
      ["Created", timeEl(created, { seconds: true })],
      ["Started", timeEl(started, { seconds: true })],
      ["Finished", timeEl(finished, { seconds: true })],
      ["Duration", started ? duration(started, finished ?? new Date()) : "—"],
      ["Command", h("pre", { class: "command" }, h("code", {}, job.command))],
      ["Image", job.image ?? h("span", { class: "muted" }, "the platform's default")],
      [
        "Instance type",
        job.instanceType ? instanceTypeText(job.instanceType) : h("span", { class: "muted" }, "none"),
      ],
      [
        "Time limit",
        job.activeDeadlineSeconds ? spanInWords(job.activeDeadlineSeconds) : h("span", { class: "muted" }, "none"),
      ],
      ["Group", job.groupName],
      ["User", job.userName ?? "—"],
      ["Message", job.message ?? h("span", { class: "muted" }, "—")],
      [
        "Artifacts kept",
        job.artifactRetentionSeconds === 0
          ? "until deleted by hand"
          : `${spanInWords(job.artifactRetentionSeconds)} after the job ends`,
      ],
    ];
    replaceChildren(
      summary,
      rows.map(([term, value]) => h("div", { class: "summary-row", dataset: { term } }, h("dt", {}, term), h("dd", {}, value))),
    );
  }

  function renderCancel() {
    if (isFinished(job.phase)) {
      replaceChildren(cancelSlot);
      return;
    }
    if (job.cancel) {
      replaceChildren(cancelSlot, h("span", { class: "muted" }, "Cancel requested"));
      return;
    }
    const button = h(
      "button",
      {
        type: "button",
        class: "button button-quiet",
        onclick: async () => {
          button.disabled = true;
          try {
            await gql(CANCEL_MUTATION, { id: job.id });
            job = { ...job, cancel: true };
            renderCancel();
            announce("Cancel requested");
          } catch (error) {
            button.disabled = false;
            if (error instanceof ApiError && error.unauthenticated) context.onUnauthenticated(error);
            else announce(`The job could not be cancelled: ${error.message}`);
          }
        },
      },
      "Cancel job",
    );
    replaceChildren(cancelSlot, button);
  }

  function update(fresh) {
    const phaseChanged = fresh.phase !== job.phase;
    job = fresh;
    if (phaseChanged) replaceChildren(badgeSlot, phaseBadge(job.phase));
    if (heading.textContent !== job.displayName) heading.textContent = job.displayName;
    renderSummary();
    renderCancel();
    syncDisabled();
    logs.update(job);
  }

  renderSummary();
  renderCancel();
  syncDisabled();
  select(initialTab);

  return {
    update,
    select,
    dispose: () => {
      artifacts.dispose();
      logs.dispose();
    },
  };
}
