// The job list (`/`): the caller's jobs, newest first, with live phases, and the form that
// creates a job.
//
// Polling updates rows in place (keyed by job id) instead of redrawing the table, so a
// keyboard user's focus and a screen reader's position survive every refresh.

import { ApiError, gql } from "./api.js";
import { errorState, loadingState, phaseBadge, poller, timeEl } from "./components.js";
import { announce, h, replaceChildren, uniqueId } from "./dom.js";
import { duration, isFinished, parseTime, plural } from "./format.js";

const PAGE = 50;
const MAX_PAGE = 200;
const POLL_BUSY_MS = 2000;
const POLL_IDLE_MS = 10000;
const GROUP_KEY = "artifacts.lastGroup";

const JOBS_QUERY = `
query Jobs($first: Int, $after: String) {
  phJobs(first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage endCursor }
    nodes { id displayName groupName userName phase createTime startTime finishTime }
  }
}`;

const CREATE_MUTATION = `
mutation Create($data: PhJobCreateInput!) {
  createPhJob(data: $data) { id }
}`;

export function renderJobList(main, context) {
  document.title = "Jobs · Job artifacts";
  const controller = new AbortController();
  const state = { jobs: [], total: 0, hasNext: false, endCursor: null, loaded: false };

  const count = h("p", { class: "muted count", "aria-live": "polite" });
  const listArea = h("div", { class: "list-area" });
  const more = h("div", { class: "actions" });
  const formArea = h("div", { id: uniqueId("new-job"), hidden: true });
  const toggle = h(
    "button",
    {
      type: "button",
      class: "button button-primary",
      "aria-expanded": "false",
      "aria-controls": formArea.id,
      onclick: () => setFormOpen(formArea.hidden),
    },
    "New job",
  );

  replaceChildren(
    main,
    h("div", { class: "page-head" }, h("h1", {}, "Jobs"), toggle),
    formArea,
    count,
    listArea,
    more,
  );
  replaceChildren(listArea, loadingState("Loading jobs…"));

  function setFormOpen(open) {
    formArea.hidden = !open;
    toggle.setAttribute("aria-expanded", String(open));
    if (open) {
      if (!formArea.firstChild) formArea.append(newJobForm(context, () => setFormOpen(false)));
      formArea.querySelector("input")?.focus();
    }
  }

  const table = jobTable();

  function render() {
    count.textContent = state.total ? `${plural(state.total, "job", "jobs")}` : "";
    if (!state.jobs.length) {
      replaceChildren(
        listArea,
        h("div", { class: "empty" }, h("p", {}, "No jobs yet."), h("p", { class: "muted" }, "Create one with New job.")),
      );
    } else {
      if (table.element.parentNode !== listArea) replaceChildren(listArea, table.element);
      table.update(state.jobs);
    }
    replaceChildren(
      more,
      state.hasNext
        ? h("button", { type: "button", class: "button", onclick: loadMore }, "Load more jobs")
        : null,
    );
  }

  async function fetchPage(first, after) {
    const data = await gql(JOBS_QUERY, { first, after }, { signal: controller.signal });
    return data.phJobs;
  }

  function handle(error, title, retry) {
    if (error.name === "AbortError") return;
    if (error instanceof ApiError && error.unauthenticated) {
      context.onUnauthenticated(error);
      return;
    }
    if (!state.loaded) replaceChildren(listArea, errorState(title, error, retry));
    else replaceChildren(more, errorState(title, error, retry));
  }

  async function load() {
    replaceChildren(listArea, loadingState("Loading jobs…"));
    try {
      const page = await fetchPage(PAGE, null);
      state.jobs = page.nodes;
      state.total = page.totalCount;
      state.hasNext = page.pageInfo.hasNextPage;
      state.endCursor = page.pageInfo.endCursor;
      state.loaded = true;
      render();
      if (!state.jobs.length) setFormOpen(true);
    } catch (error) {
      handle(error, "The jobs could not be loaded.", load);
    }
  }

  async function loadMore() {
    replaceChildren(more, loadingState("Loading more jobs…"));
    try {
      const page = await fetchPage(PAGE, state.endCursor);
      const known = new Set(state.jobs.map((job) => job.id));
      state.jobs = state.jobs.concat(page.nodes.filter((job) => !known.has(job.id)));
      state.hasNext = page.pageInfo.hasNextPage;
      state.endCursor = page.pageInfo.endCursor;
      render();
    } catch (error) {
      handle(error, "More jobs could not be loaded.", loadMore);
    }
  }

  async function refresh() {
    if (!state.loaded) return;
    try {
      const first = Math.min(MAX_PAGE, Math.max(PAGE, state.jobs.length));
      const page = await fetchPage(first, null);
      const fresh = new Set(page.nodes.map((job) => job.id));
      const tail = state.jobs.slice(page.nodes.length).filter((job) => !fresh.has(job.id));
      state.jobs = page.nodes.concat(tail);
      state.total = page.totalCount;
      if (state.jobs.length <= page.nodes.length) {
        state.hasNext = page.pageInfo.hasNextPage;
        state.endCursor = page.pageInfo.endCursor;
      }
      render();
    } catch (error) {
      if (error.name === "AbortError") return;
      if (error instanceof ApiError && error.unauthenticated) context.onUnauthenticated(error);
      // Other failures: the next tick tries again; the rows on screen stay as they were.
    }
  }

  load();
  const busy = () => state.jobs.some((job) => !isFinished(job.phase));
  let last = 0;
  const poll = poller(
    async () => {
      const wait = busy() ? POLL_BUSY_MS : POLL_IDLE_MS;
      if (Date.now() - last < wait) return;
      last = Date.now();
      await refresh();
    },
    POLL_BUSY_MS,
  );
  last = Date.now();

  return () => {
    poll.stop();
    controller.abort();
  };
}

/** The jobs table, updated in place: rows are created once per job and patched after. */
function jobTable() {
  const body = h("tbody");
  const element = h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: "table jobs" },
      h("caption", { class: "visually-hidden" }, "Jobs, newest first"),
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          h("th", { scope: "col" }, "Job"),
          h("th", { scope: "col" }, "Group"),
          h("th", { scope: "col" }, "Phase"),
          h("th", { scope: "col" }, "Created"),
          h("th", { scope: "col", class: "num" }, "Duration"),
        ),
      ),
      body,
    ),
  );
  const rows = new Map();

  function cells(job) {
    const created = parseTime(job.createTime);
    const started = parseTime(job.startTime);
    const finished = parseTime(job.finishTime);
    return {
      group: job.groupName,
      phase: phaseBadge(job.phase),
      created: timeEl(created, { relative: true }),
      duration: started ? duration(started, finished ?? new Date()) : "—",
    };
  }

  function makeRow(job) {
    const content = cells(job);
    const phase = h("td", { "data-label": "Phase", class: "phase-cell" }, content.phase);
    const created = h("td", { "data-label": "Created" }, content.created);
    const took = h("td", { "data-label": "Duration", class: "num" }, content.duration);
    const name = h("a", { href: `/jobs/${encodeURIComponent(job.id)}`, "data-nav": "" }, job.displayName);
    const tr = h(
      "tr",
      { dataset: { jobId: job.id } },
      h("th", { scope: "row", "data-label": "Job" }, name, h("span", { class: "job-id" }, job.id)),
      h("td", { "data-label": "Group" }, job.groupName),
      phase,
      created,
      took,
    );
    return { tr, phase, created, took, name, job };
  }

  function update(jobs) {
    const wanted = new Set(jobs.map((job) => job.id));
    for (const [id, row] of rows) {
      if (!wanted.has(id)) {
        row.tr.remove();
        rows.delete(id);
      }
    }
    let previous = null;
    for (const job of jobs) {
      let row = rows.get(job.id);
      if (!row) {
        row = makeRow(job);
        rows.set(job.id, row);
        // Insert after the previous row; existing rows never move (moving drops focus).
        body.insertBefore(row.tr, previous ? previous.nextSibling : body.firstChild);
      } else {
        if (row.job.phase !== job.phase) {
          replaceChildren(row.phase, phaseBadge(job.phase));
          announce(`${job.displayName}: ${job.phase}`);
        }
        if (row.job.displayName !== job.displayName) row.name.textContent = job.displayName;
        const content = cells(job);
        replaceChildren(row.created, content.created);
        row.took.textContent = content.duration;
        row.job = job;
      }
      previous = row.tr;
    }
  }

  return { element, update };
}

function field({ id, label, control, help }) {
  const helpId = help ? `${id}-help` : null;
  const errorId = `${id}-error`;
  control.id = id;
  control.setAttribute("aria-describedby", [helpId, errorId].filter(Boolean).join(" "));
  return h(
    "div",
    { class: "field", dataset: { field: control.name } },
    h("label", { for: id }, label),
    control,
    help ? h("p", { id: helpId, class: "help" }, help) : null,
    h("p", { id: errorId, class: "field-error", hidden: true }),
  );
}

/** The "new job" form: display name, group, command and image, as PhJobCreateInput takes them. */
function newJobForm(context, close) {
  const viewer = context.viewer ?? { groups: [] };
  const listId = uniqueId("groups");
  const remembered = safeLocal(() => window.localStorage.getItem(GROUP_KEY));
  const displayName = h("input", { name: "displayName", required: true, maxlength: 256, autocomplete: "off" });
  const group = h("input", {
    name: "groupName",
    required: true,
    autocomplete: "off",
    list: viewer.groups.length ? listId : null,
    value: remembered || viewer.groups[0] || "",
  });
  const command = h("textarea", {
    name: "command",
    required: true,
    rows: 4,
    spellcheck: "false",
    class: "mono",
    placeholder: 'mkdir -p artifacts; echo "hello" > artifacts/hello.txt',
  });
  const image = h("input", {
    name: "image",
    autocomplete: "off",
    spellcheck: "false",
    placeholder: "the platform's default image",
  });
  const formError = h("div", { class: "form-error" });
  const submit = h("button", { type: "submit", class: "button button-primary" }, "Create job");
  const controls = { displayName, groupName: group, command, image };

  function clearErrors() {
    replaceChildren(formError);
    for (const control of Object.values(controls)) {
      control.removeAttribute("aria-invalid");
      const error = document.getElementById(`${control.id}-error`);
      error.hidden = true;
      error.textContent = "";
    }
  }

  const form = h(
    "form",
    {
      class: "card form new-job",
      "aria-label": "New job",
      novalidate: true,
      onsubmit: async (event) => {
        event.preventDefault();
        clearErrors();
        const missing = [displayName, group, command].find((control) => !control.value.trim());
        if (missing) {
          showFieldError(missing, "This field is required.");
          return;
        }
        submit.disabled = true;
        submit.textContent = "Creating…";
        try {
          const data = await gql(CREATE_MUTATION, {
            data: {
              displayName: displayName.value.trim(),
              groupName: group.value.trim(),
              command: command.value,
              image: image.value.trim() || null,
            },
          });
          safeLocal(() => window.localStorage.setItem(GROUP_KEY, group.value.trim()));
          announce("Job created");
          context.navigate(`/jobs/${encodeURIComponent(data.createPhJob.id)}`);
        } catch (error) {
          submit.disabled = false;
          submit.textContent = "Create job";
          if (error instanceof ApiError && error.unauthenticated) {
            context.onUnauthenticated(error);
            return;
          }
          const control = error instanceof ApiError && error.field ? controls[error.field] : null;
          if (control) showFieldError(control, error.message);
          else {
            replaceChildren(formError, errorState("The job could not be created.", error, null));
            formError.querySelector("[role=alert]")?.setAttribute("tabindex", "-1");
            formError.querySelector("[role=alert]")?.focus();
          }
        }
      },
    },
    h("h2", { class: "form-title" }, "New job"),
    formError,
    h(
      "div",
      { class: "form-grid" },
      field({ id: uniqueId("display-name"), label: "Display name", control: displayName }),
      field({
        id: uniqueId("group"),
        label: "Group",
        control: group,
        help: viewer.groups.length ? `Your groups: ${viewer.groups.join(", ")}` : null,
      }),
    ),
    field({
      id: uniqueId("command"),
      label: "Command",
      control: command,
      help: "Runs with bash -c in the job's home folder; whatever it leaves in ./artifacts is kept.",
    }),
    field({ id: uniqueId("image"), label: "Image (optional)", control: image }),
    viewer.groups.length ? h("datalist", { id: listId }, viewer.groups.map((name) => h("option", { value: name }))) : null,
    h(
      "div",
      { class: "actions" },
      submit,
      h("button", { type: "button", class: "button button-quiet", onclick: close }, "Cancel"),
    ),
  );
  return form;
}

function showFieldError(control, message) {
  control.setAttribute("aria-invalid", "true");
  const error = document.getElementById(`${control.id}-error`);
  error.textContent = message;
  error.hidden = false;
  control.focus();
}

function safeLocal(action) {
  try {
    return action();
  } catch {
    return null;
  }
}
