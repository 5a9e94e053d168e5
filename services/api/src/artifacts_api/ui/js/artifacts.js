// The Artifacts tab: what the job left in ~/artifacts, a folder at a time, from the GraphQL
// `artifact { entries(path, first, after, startsWith) }` field: asked for when the tab opens
// (and again on Refresh), one page of one folder per request, so a job of 100,000 files
// opens as fast as one of 10.
//
// States: loading; an error with Retry; nothing collected ("This job left no artifacts");
// gone because the janitor deleted them ("Artifacts expired on ..."); not collected because
// a limit was exceeded (the collector's reason, with its figures); and the listing: the
// job's totals and expiry, breadcrumbs, a filter by name within the folder, one page of
// folders and files (never more rows than a page), "Next page"/"Previous page", per-file
// downloads through presigned links and "Download all (zip)" through the api's signed zip
// link. Folders open with Enter or a click; the breadcrumbs (or the folder's "Up" row)
// lead back, and focus returns to the folder that was left.
//
// Links are signed for DOWNLOAD_URL_TTL_SECONDS (5 minutes by default). A reader who comes
// back to the tab later still gets a working download: a click on a link that has expired
// or is about to asks the api for a fresh one first.

import { ApiError, gql, linkExpiry } from "./api.js";
import { errorState, loadingState, timeEl } from "./components.js";
import { announce, h, replaceChildren, safeHref } from "./dom.js";
import { crumbs, nameIn, parentOf } from "./folders.js";
import { retentionLine } from "./retention.js";
import { viewFile } from "./viewer.js";
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

const LINK_MARGIN_MS = 15000;
const PAGE_SIZE = 100;
const FILTER_DELAY_MS = 250;

const ARTIFACTS_QUERY = `
query Artifacts($id: ID!, $path: String!, $after: String, $startsWith: String!) {
  viewer { admin }
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
      retention { expiredAt state changedBy changedAt reason }
      entries(path: $path, first: ${PAGE_SIZE}, after: $after, startsWith: $startsWith) {
        path
        fileCount
        totalSize
        pageInfo { hasNextPage endCursor }
        nodes {
          __typename
          ... on PhJobArtifactFolder { name path fileCount totalSize }
          ... on PhJobArtifactItem { name size lastModified downloadUrl viewUrl }
        }
      }
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
  // Where the reader is: a folder, the filter, and the cursors of the pages before this one.
  let path = "";
  let startsWith = "";
  let cursors = [null];
  let focusAfter = null;
  let filterTimer = null;
  let viewer = { admin: false };
  const viewing = h("section", { class: "viewer", "aria-label": "File", hidden: true });

  async function load() {
    controller?.abort();
    controller = new AbortController();
    panel.setAttribute("aria-busy", "true");
    if (!loaded) replaceChildren(panel, loadingState("Loading artifacts…"));
    try {
      const data = await gql(
        ARTIFACTS_QUERY,
        { id: jobId, path, after: cursors[cursors.length - 1], startsWith },
        { signal: controller.signal },
      );
      loaded = true;
      viewer = data.viewer ?? { admin: false };
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

  function open(folder, { focus = null } = {}) {
    path = folder;
    cursors = [null];
    startsWith = "";
    focusAfter = focus;
    load();
  }

  function refreshButton() {
    return h("button", { type: "button", class: "button button-quiet", onclick: load }, "Refresh");
  }

  function render(job) {
    // Never null: a job that left nothing, or whose folder the janitor deleted, lists nothing.
    const artifact = job.artifact ?? {
      entries: { nodes: [], pageInfo: { hasNextPage: false } },
      expiredAt: null,
      skipped: false,
    };
    const expiry = parseTime(artifact.expiredAt ?? job.artifactExpiredAt);
    const now = new Date();
    const entries = artifact.entries;
    const nothing =
      !artifact.skipped && path === "" && !startsWith && cursors.length === 1 &&
      entries.nodes.length === 0 && !entries.pageInfo.hasNextPage;
    if (nothing) {
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
    // The folder's own expiry once it is stored: a user may have kept or moved it.
    const stored = artifact.retention ? parseTime(artifact.retention.expiredAt) : expiry;
    renderListing(job, artifact, stored, now);
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

  function totalsText(files, size) {
    if (files === null || files === undefined) return null;
    return [
      h("strong", {}, plural(files, "file", "files")),
      " · ",
      h("strong", { title: exactBytes(size) }, formatBytes(size)),
    ];
  }

  function renderListing(job, artifact, expiry, now) {
    const entries = artifact.entries;
    const totals = h("p", { class: "artifact-totals" }, totalsText(artifact.fileCount, artifact.totalSize));
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
      artifact.retention
        ? retentionLine(job, viewer, { onChanged: load, onUnauthenticated: context.onUnauthenticated })
        : null,
      viewing,
      breadcrumbs(),
      filterBox(),
      listingTable(job, entries),
      pager(entries),
    );
    const count = entries.nodes.length;
    announce(`${path ? `Folder ${path}` : "All files"}: ${plural(count, "entry", "entries")}${entries.pageInfo.hasNextPage ? " on this page" : ""}`);
    if (focusAfter) {
      const target = panel.querySelector(focusAfter);
      (target ?? panel.querySelector(".crumbs [aria-current]"))?.focus();
      focusAfter = null;
    }
  }

  function breadcrumbs() {
    const trail = crumbs(path);
    return h(
      "nav",
      { class: "crumbs", "aria-label": "Folder" },
      h(
        "ol",
        {},
        trail.map((crumb, index) => {
          const last = index === trail.length - 1;
          return h(
            "li",
            {},
            last
              ? h("span", { "aria-current": "location", tabindex: "-1" }, visibleName(crumb.label))
              : h(
                  "button",
                  {
                    type: "button",
                    class: "crumb",
                    onclick: () => open(crumb.path, { focus: folderSelector(childOf(crumb.path)) }),
                  },
                  visibleName(crumb.label),
                ),
          );
        }),
      ),
    );
  }

  /** The folder directly inside `ancestor` on the way to the current one. */
  function childOf(ancestor) {
    const rest = path.slice(ancestor.length);
    const cut = rest.indexOf("/");
    return cut < 0 ? path : ancestor + rest.slice(0, cut + 1);
  }

  function folderSelector(folder) {
    return `button.folder-open[data-path="${CSS.escape(folder)}"]`;
  }

  function filterBox() {
    const input = h("input", {
      type: "search",
      id: "artifact-filter",
      class: "filter-input",
      value: startsWith,
      placeholder: "Name starts with…",
      autocomplete: "off",
      spellcheck: "false",
      oninput: (event) => {
        window.clearTimeout(filterTimer);
        const value = event.currentTarget.value.replace(/\//g, "");
        filterTimer = window.setTimeout(() => {
          startsWith = value;
          cursors = [null];
          focusAfter = "#artifact-filter";
          load();
        }, FILTER_DELAY_MS);
      },
    });
    return h(
      "div",
      { class: "artifact-filter" },
      h("label", { for: "artifact-filter" }, "Filter this folder"),
      input,
    );
  }

  function pager(entries) {
    const previous = cursors.length > 1;
    const next = entries.pageInfo.hasNextPage;
    if (!previous && !next) return null;
    return h(
      "div",
      { class: "actions pager" },
      h(
        "button",
        {
          type: "button",
          class: "button",
          disabled: !previous,
          onclick: () => {
            cursors = cursors.slice(0, -1);
            focusAfter = ".pager button:first-child";
            load();
          },
        },
        "Previous page",
      ),
      h("span", { class: "muted" }, `Page ${cursors.length}`),
      h(
        "button",
        {
          type: "button",
          class: "button",
          disabled: !next,
          onclick: () => {
            cursors = [...cursors, entries.pageInfo.endCursor];
            focusAfter = ".pager button:last-child";
            load();
          },
        },
        "Next page",
      ),
    );
  }

  function folderRow(node) {
    const label = `${nameIn(path, node.path)}`;
    const openIt = h(
      "button",
      {
        type: "button",
        class: "folder-open",
        title: node.path,
        dataset: { path: node.path },
        onclick: () => open(node.path, { focus: ".crumbs [aria-current]" }),
      },
      h("span", { class: "folder-icon", "aria-hidden": "true" }),
      h("span", { class: "visually-hidden" }, "Folder "),
      visibleName(label),
    );
    const known = node.fileCount !== null && node.fileCount !== undefined;
    return h(
      "tr",
      { class: "folder-row", dataset: { path: node.path } },
      h("th", { scope: "row", class: "path" }, openIt),
      h("td", { class: "num", title: known ? exactBytes(node.totalSize) : null }, known ? formatBytes(node.totalSize) : "—"),
      h("td", { class: "muted when" }, known ? plural(node.fileCount, "file", "files") : "folder"),
    );
  }

  function fileRow(item) {
    const shown = visibleName(item.name);
    const label = nameIn(path, item.name);
    const link = h(
      "a",
      {
        href: safeHref(item.downloadUrl),
        class: "file-link",
        title: shown,
        "aria-label": shown,
        download: label,
        onclick: (event) => freshLink(event, () => itemLink(item.name)),
      },
      visibleName(label),
    );
    const show = item.viewUrl
      ? h(
          "button",
          {
            type: "button",
            class: "button button-quiet view-file",
            "aria-label": `View ${shown}`,
            onclick: () => showFile(item),
          },
          "View",
        )
      : null;
    return h(
      "tr",
      { class: "file-row", dataset: { path: item.name } },
      h("th", { scope: "row", class: "path" }, link, show),
      h("td", { class: "num size", title: exactBytes(item.size) }, formatBytes(item.size)),
      h("td", { class: "when" }, timeEl(parseTime(item.lastModified))),
    );
  }

  function listingTable(job, entries) {
    const rows = [];
    if (path) {
      const up = h(
        "button",
        {
          type: "button",
          class: "folder-open folder-up",
          onclick: () => open(parentOf(path), { focus: folderSelector(path) }),
        },
        h("span", { class: "visually-hidden" }, "Up to "),
        "..",
        h("span", { class: "visually-hidden" }, parentOf(path) ? ` ${parentOf(path)}` : " all files"),
      );
      rows.push(h("tr", { class: "up-row" }, h("th", { scope: "row", class: "path" }, up), h("td"), h("td")));
    }
    for (const node of entries.nodes) {
      rows.push(node.__typename === "PhJobArtifactFolder" ? folderRow(node) : fileRow(node));
    }
    if (entries.nodes.length === 0) {
      rows.push(
        h(
          "tr",
          { class: "empty-row" },
          h("td", { colspan: "3", class: "muted" }, startsWith ? `No name here starts with “${startsWith}”.` : "This folder is empty."),
        ),
      );
    }
    const folderTotals = path ? totalsText(entries.fileCount, entries.totalSize) : null;
    return h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { class: "table artifacts" },
        h("caption", { class: "visually-hidden" }, `Artifacts of ${job.id} in ${path || "the top folder"}, sorted by name`),
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            h("th", { scope: "col", class: "path-col" }, "Name"),
            h("th", { scope: "col", class: "num" }, "Size"),
            h("th", { scope: "col", class: "when" }, "Last modified"),
          ),
        ),
        h("tbody", {}, rows),
        folderTotals
          ? h("tfoot", {}, h("tr", {}, h("th", { scope: "row", colspan: "3" }, "In this folder: ", folderTotals)))
          : null,
      ),
    );
  }

  function showFile(item) {
    viewFile(viewing, item.viewUrl, visibleName(item.name), {
      onClose: () => {
        viewing.hidden = true;
        replaceChildren(viewing);
      },
    });
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
