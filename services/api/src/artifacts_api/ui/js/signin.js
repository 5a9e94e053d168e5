// Sign-in when the api asks for a token (API_AUTH_MODE oidc or hs256): paste a bearer
// token once; it is kept for this tab only (sessionStorage). A link to the page may carry
// it instead, as `#token=...`.

import { h, replaceChildren } from "./dom.js";

export function renderSignIn(main, { message, onToken }) {
  const input = h("input", {
    id: "token",
    name: "token",
    type: "password",
    autocomplete: "off",
    spellcheck: "false",
    required: true,
    "aria-describedby": "token-help",
  });
  const form = h(
    "form",
    {
      class: "card form",
      onsubmit: (event) => {
        event.preventDefault();
        const token = input.value.trim().replace(/^Bearer\s+/i, "");
        if (token) onToken(token);
      },
    },
    h("div", { class: "field" }, h("label", { for: "token" }, "Access token"), input),
    h(
      "p",
      { id: "token-help", class: "help" },
      "The api needs a bearer token (a JWT from your identity provider). It is kept in this " +
        "browser tab only and sent with every request to the api.",
    ),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "button button-primary" }, "Sign in")),
  );
  replaceChildren(
    main,
    h("h1", {}, "Sign in"),
    message ? h("p", { class: "notice notice-error", role: "alert" }, message) : null,
    form,
  );
  return () => {};
}
