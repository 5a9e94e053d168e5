// The Artifacts tab: what the job left in ~/artifacts, from the GraphQL `artifact` field,
// asked for when the tab opens (and again on Refresh).
//
// States: loading; an error with Retry; nothing collected ("This job left no artifacts");
// gone because the janitor deleted them ("Artifacts expired on ..."); not collected because
// a limit was exceeded (the collector's reason, with its figures); and the listing: a
// folder-aware table sorted by path, totals, expiry, per-file downloads through presigned
// links and "Download all (zip)" through the api's signed zip link.
//
// Links are signed for DOWNLOAD_URL_TTL_SECONDS (5 minutes by default). A reader who comes
// back to the tab later still gets a working download: a click on a link that has expired
// or is about to asks the api for a fresh one first.

import { ApiError, gql, linkExpiry } from "./api.js";
import { errorState, loadingState, timeEl } from "./components.js";
import { announce, h, replaceChildren, safeHref } from "./dom.js";
import {
  exactBytes,
  formatBytes,
  formatTime,
  parseTime,
  plural,
  relativeTime,
  spanInWords,
  visibleName,
} from "./format.js";
import { folderRows } from "./tree.js";

const LINK_MARGIN_MS = 15000;

const ARTIFACTS_QUERY = `
query Artifacts($id: ID!) {
  phJob(where: {id: $id}) {
    id
    finishTime
    artifactRetentionSeconds
    artifactExpiredAt
    artifact {
      expiredAt
      fileCount
      totalSize
      skipped
      skipReason
      zipUrl
      items { name size lastModified downloadUrl }
    }
  }
}`;

const ITEM_LINK_QUERY = `
query ItemLink($id: ID!, $name: String!) {
  phJob(where: {id: $id}) { id artifact { item(name: $name) { downloadUrl } } }
}`;

const ZIP_LINK_QUERY = `
query ZipLink($id: ID!) {
  phJob(where: {id: $id}) { id artifact { zipUrl } }
}`;

/** The collector's reason as a sentence: its log line without the "artifacts: skipped," lead. */
function skipText(reason) {
  if (!reason) return "The collector did not say which limit.";
  const text = reason.replace(/^artifacts:\s*(skipped,?\s*)?/i, "").trim();
  return text.charAt(0).toUpperCase() + text.slice(1) + (/[.!]$/.test(text) ? "" : ".");
}

export function artifactsPanel(panel, jobId, context) {
  let controller = null;
  let loaded = false;

  async function load() {
    controller?.abort();
    controller = new AbortController();
    panel.setAttribute("aria-busy", "true");
    replaceChildren(panel, loadingState("Loading artifacts…"));
    try {
      const data = await gql(ARTIFACTS_QUERY, { id: jobId }, { signal: controller.signal });
      loaded = true;
      render(data.phJob);
    } catch (error) {
      if (error.name === "AbortError") return;
      if (error instanceof ApiError && error.unauthenticated) {
        context.onUnauthenticated(error);
        return;
      }
      replaceChildren(panel, errorState("The artifacts could not be loaded.", error, load));
    } finally {
      panel.removeAttribute("aria-busy");
    }
  }

  function refreshButton() {
    return h("button", { type: "button", class: "button button-quiet", onclick: load }, "Refresh");
  }

  function render(job) {
    // Never null: a job that left nothing, or whose folder the janitor deleted, has no items.
    const artifact = job.artifact ?? { items: [], expiredAt: null, skipped: false };
    const expiry = parseTime(artifact.expiredAt ?? job.artifactExpiredAt);
    const now = new Date();
    if (!artifact.skipped && artifact.items.length === 0) {
      // No expiredAt of the folder's own: nothing of it is left, and its time has passed.
      if (!artifact.expiredAt && expiry && expiry <= now) {
        renderMessage(
          "expired",
          `Artifacts expired on ${formatTime(expiry)}.`,
          `They were kept for ${spanInWords(job.artifactRetentionSeconds)} after the job ended and have been deleted.`,
        );
      } else {
        renderMessage(
          "empty",
          "This job left no artifacts.",
          "Files a job leaves in ~/artifacts are collected when it ends and listed here.",
        );
      }
      announce("No artifacts");
      return;
    }
    if (artifact.skipped) {
      renderMessage(
        "skipped",
        "Artifacts were not collected: a limit was exceeded.",
        skipText(artifact.skipReason),
      );
      announce("Artifacts were not collected");
      return;
    }
    renderListing(job, artifact, expiry, now);
    announce(`${plural(artifact.fileCount, "artifact", "artifacts")} listed`);
  }

  function renderMessage(kind, title, detail) {
    replaceChildren(
      panel,
      h(
        "div",
        { class: `empty artifacts-${kind}`, dataset: { state: kind } },
        h("p", { class: "empty-title" }, title),
        h("p", { class: "muted" }, detail),
      ),
      h("div", { class: "actions" }, refreshButton()),
    );
  }

  function expiryLine(expiry, job, now) {
    if (!expiry) {
      if (job.artifactRetentionSeconds === 0) return h("span", {}, "Kept until deleted by hand");
      return null;
    }
    if (expiry <= now) {
      return h(
        "span",
        { class: "warning" },
        "Expired on ",
        timeEl(expiry),
        "; they are deleted at the janitor's next run",
      );
    }
    return h(
      "span",
      { class: "expiry" },
      "Expires ",
      h("time", { datetime: expiry.toISOString(), title: formatTime(expiry, { seconds: true }) }, relativeTime(expiry, now)),
      ` (${formatTime(expiry)})`,
    );
  }

  function renderListing(job, artifact, expiry, now) {
    const totals = h(
      "p",
      { class: "artifact-totals" },
      h("strong", {}, plural(artifact.fileCount, "file", "files")),
      " · ",
      h("strong", { title: exactBytes(artifact.totalSize) }, formatBytes(artifact.totalSize)),
    );
    const expiryText = expiryLine(expiry, job, now);
    const zip = h(
      "a",
      {
        class: "button button-primary",
        href: safeHref(artifact.zipUrl),
        download: `${job.id}-artifacts.zip`,
        onclick: (event) => freshLink(event, () => zipLink()),
      },
      "Download all (zip)",
    );
    replaceChildren(
      panel,
      h(
        "div",
        { class: "artifact-head" },
        h("div", {}, totals, expiryText ? h("p", { class: "muted artifact-expiry" }, expiryText) : null),
        h("div", { class: "actions" }, zip, refreshButton()),
      ),
      listingTable(job, artifact),
    );
  }

  function listingTable(job, artifact) {
    const rows = folderRows(artifact.items);
    const body = h("tbody");
    const collapsed = new Set();
    const trs = [];

    function applyCollapse() {
      for (const { tr, row } of trs) {
        let hidden = false;
        for (const folder of collapsed) {
          if (row.parent.startsWith(folder)) hidden = true;
        }
        tr.hidden = hidden;
      }
    }

    for (const row of rows) {
      let tr;
      if (row.kind === "folder") {
        const toggle = h(
          "button",
          {
            type: "button",
            class: "folder-toggle",
            "aria-expanded": "true",
            title: row.path,
            onclick: () => {
              const open = toggle.getAttribute("aria-expanded") === "true";
              toggle.setAttribute("aria-expanded", String(!open));
              if (open) collapsed.add(row.path);
              else collapsed.delete(row.path);
              applyCollapse();
            },
          },
          h("span", { class: "chevron", "aria-hidden": "true" }),
          h("span", { class: "visually-hidden" }, "Folder "),
          visibleName(row.label),
        );
        tr = h(
          "tr",
          { class: "folder-row", dataset: { path: row.path } },
          h("th", { scope: "row", class: "path", style: { "--depth": String(row.depth) } }, toggle),
          h("td", { class: "num", title: exactBytes(row.size) }, formatBytes(row.size)),
          h("td", { class: "muted when" }, plural(row.count, "file", "files")),
        );
      } else {
        const item = row.item;
        const shown = visibleName(item.name);
        const link = h(
          "a",
          {
            href: safeHref(item.downloadUrl),
            class: "file-link",
            title: shown,
            "aria-label": shown,
            download: row.label,
            onclick: (event) => freshLink(event, () => itemLink(item.name)),
          },
          visibleName(row.label),
        );
        const modified = parseTime(item.lastModified);
        tr = h(
          "tr",
          { class: "file-row", dataset: { path: item.name } },
          h("th", { scope: "row", class: "path", style: { "--depth": String(row.depth) } }, link),
          h("td", { class: "num size", title: exactBytes(item.size) }, formatBytes(item.size)),
          h("td", { class: "when" }, timeEl(modified)),
        );
      }
      trs.push({ tr, row });
      body.append(tr);
    }

    return h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { class: "table artifacts" },
        h("caption", { class: "visually-hidden" }, `Artifacts of ${job.id}, sorted by path`),
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            h("th", { scope: "col", class: "path-col" }, "Path"),
            h("th", { scope: "col", class: "num" }, "Size"),
            h("th", { scope: "col", class: "when" }, "Last modified"),
          ),
        ),
        body,
        h(
          "tfoot",
          {},
          h(
            "tr",
            {},
            h("th", { scope: "row" }, `Total: ${plural(artifact.fileCount, "file", "files")}`),
            h("td", { class: "num", title: exactBytes(artifact.totalSize) }, formatBytes(artifact.totalSize)),
            h("td", { class: "when" }),
          ),
        ),
      ),
    );
  }

  async function itemLink(name) {
    const data = await gql(ITEM_LINK_QUERY, { id: jobId, name });
    return data.phJob.artifact?.item?.downloadUrl ?? null;
  }

  async function zipLink() {
    const data = await gql(ZIP_LINK_QUERY, { id: jobId });
    return data.phJob.artifact?.zipUrl ?? null;
  }

  /** Follow the link if it is still good; otherwise ask for a fresh one, then follow that. */
  async function freshLink(event, renew) {
    const link = event.currentTarget;
    const expires = linkExpiry(link.href);
    if (expires === null || expires - Date.now() > LINK_MARGIN_MS) return;
    event.preventDefault();
    try {
      const href = safeHref(await renew());
      if (!href) {
        announce("This file is no longer there");
        load();
        return;
      }
      link.href = href;
      window.location.assign(href);
    } catch (error) {
      if (error instanceof ApiError && error.unauthenticated) context.onUnauthenticated(error);
      else replaceChildren(panel, errorState("A fresh download link could not be made.", error, load));
    }
  }

  return {
    load,
    get loaded() {
      return loaded;
    },
    dispose() {
      controller?.abort();
    },
  };
}
