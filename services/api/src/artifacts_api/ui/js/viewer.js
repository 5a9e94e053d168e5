// Showing one artifact in the page: an image in an <img>, text in a <pre> as text (never
// parsed as HTML). The api's view route (`viewUrl`) decides from the file's bytes what it
// is, answering text/plain, an image type, or 415 for markup and binaries; this only
// follows its Content-Type. HTML and SVG get no viewUrl and are only ever downloaded.

import { h, replaceChildren, safeHref } from "./dom.js";
import { formatBytes } from "./format.js";

/** Fill `place` with the file at `url` (its name `name`); `onClose` empties it again. */
export async function viewFile(place, url, name, { onClose }) {
  const href = safeHref(url);
  const close = h("button", { type: "button", class: "button button-quiet", onclick: onClose }, "Close");
  const head = h("div", { class: "viewer-head" }, h("strong", {}, name), close);
  replaceChildren(place, head, h("p", { class: "muted" }, "Loading…"));
  place.hidden = false;
  if (!href) return;
  let response;
  try {
    response = await fetch(href, { credentials: "omit" });
  } catch {
    replaceChildren(place, head, h("p", { class: "warning" }, "The file could not be loaded."));
    return;
  }
  const media = response.headers.get("Content-Type") ?? "";
  if (!response.ok) {
    const body = await response.json().catch(() => null);
    const reason = body?.errors?.[0]?.message ?? `The api answered ${response.status}.`;
    replaceChildren(place, head, h("p", { class: "warning viewer-refused" }, reason));
    return;
  }
  if (media.startsWith("image/")) {
    await response.body?.cancel();
    replaceChildren(place, head, h("img", { class: "viewer-image", src: href, alt: name }));
  } else {
    const text = await response.text();
    const size = Number(response.headers.get("X-Artifact-Size"));
    const cut = response.headers.get("X-Artifact-Truncated") === "true";
    replaceChildren(
      place,
      head,
      cut ? h("p", { class: "muted" }, `The first MiB of ${formatBytes(size)}; download it for the rest.`) : null,
      h("pre", { class: "viewer-text", text }),
    );
  }
  close.focus();
}
