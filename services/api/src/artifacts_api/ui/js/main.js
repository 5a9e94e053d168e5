// The page's router: `/` is the job list, `/jobs/<id>` a job (its fragment picks the tab,
// `#artifacts`). Links are real links; plain clicks on those marked `data-nav` are handled
// here without reloading, anything else (new tab, modifier keys) is the browser's.

import { adoptTokenFromUrl, gql, setToken, getToken, ApiError } from "./api.js";
import { append, h, replaceChildren } from "./dom.js";
import { renderJobList } from "./joblist.js";
import { renderJobDetail } from "./jobdetail.js";
import { renderSignIn } from "./signin.js";

const main = document.getElementById("main");
const who = document.getElementById("who");

let dispose = null;
let viewer = null;

/** Where the router sends the reader next; `replace` for redirects that should not stack. */
export function navigate(path, { replace = false } = {}) {
  if (replace) window.history.replaceState({}, "", path);
  else window.history.pushState({}, "", path);
  route({ focus: true });
}

function jobIdFrom(pathname) {
  const match = /^\/jobs\/([^/]+)\/?$/.exec(pathname);
  return match ? decodeURIComponent(match[1]) : null;
}

function focusHeading() {
  const heading = main.querySelector("h1");
  if (heading) {
    heading.setAttribute("tabindex", "-1");
    heading.focus({ preventScroll: true });
  }
  window.scrollTo(0, 0);
}

async function loadViewer() {
  try {
    const data = await gql("{ viewer { name groups admin } }");
    viewer = data.viewer;
  } catch (error) {
    if (error instanceof ApiError && error.unauthenticated) {
      viewer = null;
      throw error;
    }
    // Any other failure: the view itself will show it, with a retry.
    viewer = { name: "", groups: [], admin: false, unknown: true };
  }
  renderWho();
  return viewer;
}

function renderWho() {
  const parts = [];
  if (viewer && viewer.name) {
    parts.push(h("span", { class: "who-name" }, viewer.name, viewer.admin ? " (admin)" : ""));
  }
  if (getToken()) {
    parts.push(
      h(
        "button",
        {
          type: "button",
          class: "button button-quiet",
          onclick: () => {
            setToken(null);
            viewer = null;
            route({ focus: true });
          },
        },
        "Sign out",
      ),
    );
  }
  replaceChildren(who, parts);
}

function showSignIn(message) {
  renderWho();
  document.title = "Sign in · Job artifacts";
  dispose = renderSignIn(main, {
    message,
    onToken: (token) => {
      setToken(token);
      route({ focus: true });
    },
  });
  focusHeading();
}

async function route({ focus = false } = {}) {
  if (dispose) dispose();
  dispose = null;
  const context = {
    navigate,
    get viewer() {
      return viewer;
    },
    onUnauthenticated: (error) => {
      if (dispose) dispose();
      dispose = null;
      viewer = null;
      showSignIn(error.message);
    },
  };
  if (!viewer) {
    replaceChildren(main, h("p", { class: "state", role: "status" }, "Loading…"));
    try {
      await loadViewer();
    } catch (error) {
      showSignIn(getToken() ? error.message : null);
      return;
    }
  }
  const jobId = jobIdFrom(window.location.pathname);
  if (jobId) {
    dispose = renderJobDetail(main, jobId, context);
  } else if (window.location.pathname === "/" || window.location.pathname === "/jobs") {
    dispose = renderJobList(main, context);
  } else {
    document.title = "Not found · Job artifacts";
    replaceChildren(
      main,
      h("h1", {}, "Page not found"),
      append(h("p"), ["There is nothing at this address. ", h("a", { href: "/", "data-nav": "" }, "See all jobs"), "."]),
    );
  }
  if (focus) focusHeading();
}

document.addEventListener("click", (event) => {
  if (event.defaultPrevented || event.button !== 0) return;
  if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  const link = event.target.closest("a[data-nav]");
  if (!link || link.target) return;
  const url = new URL(link.href);
  if (url.origin !== window.location.origin) return;
  event.preventDefault();
  const samePage = url.pathname === window.location.pathname;
  window.history.pushState({}, "", url.pathname + url.search + url.hash);
  if (!samePage) route({ focus: true });
  else window.dispatchEvent(new HashChangeEvent("hashchange"));
});

window.addEventListener("popstate", () => route({ focus: true }));

adoptTokenFromUrl();
route();
