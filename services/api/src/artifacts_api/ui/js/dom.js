// Building the page from data without HTML strings: every value becomes a text node or an
// attribute through the DOM, so a file named `<img onerror=...>` stays text. Nothing in the
// UI assigns innerHTML.

/**
 * h("a", {href: "/", class: "x", onclick: fn}, "text", child, [more]) -> Element
 * Props: `class`, `text`, `dataset` (object), `on<event>` (function), `style` (object of
 * custom properties or CSS properties set through CSSOM, allowed by the page's CSP), any
 * other attribute; null/undefined/false props are left out, `true` sets an empty attribute.
 */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props ?? {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "style") {
      for (const [name, v] of Object.entries(value)) el.style.setProperty(name, v);
    } else if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

export function replaceChildren(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** An http(s) URL to put in an href, or null: links come from the api, but never trust a scheme. */
export function safeHref(value) {
  if (typeof value !== "string") return null;
  try {
    const url = new URL(value, window.location.href);
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
  } catch {
    return null;
  }
}

/** Say something to screen readers through the page's polite live region. */
export function announce(text) {
  const region = document.getElementById("announcer");
  if (!region) return;
  region.textContent = "";
  // A fresh text node after a tick makes repeated messages heard again.
  window.setTimeout(() => {
    region.textContent = text;
  }, 50);
}

let idCounter = 0;
export function uniqueId(prefix) {
  idCounter += 1;
  return `${prefix}-${idCounter}`;
}
