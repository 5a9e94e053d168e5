// The api's GraphQL endpoint, and the bearer token the page was given.
//
// The token comes once, either in the URL (`#token=...`, which the page removes from the
// address bar and history at once) or pasted into the sign-in form, and is kept in
// sessionStorage: it lives as long as the tab, never in a cookie the browser would send
// on its own. With API_AUTH_MODE=none no token is needed and none is asked for.

const TOKEN_KEY = "artifacts.token";

export class ApiError extends Error {
  /** `code` is the api's extensions.code, or NETWORK / HTTP_<status> when it never answered. */
  constructor(message, { code = "UNKNOWN", field = null, status = 0 } = {}) {
    super(message);
    this.name = "ApiError";
    this.code = code;
    this.field = field;
    this.status = status;
  }

  get unauthenticated() {
    return this.code === "UNAUTHENTICATED";
  }
}

export function getToken() {
  try {
    return window.sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

export function setToken(token) {
  try {
    if (token) window.sessionStorage.setItem(TOKEN_KEY, token);
    else window.sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    // Storage refused (private mode quotas): the token lasts until the page reloads.
  }
  memoryToken = token || null;
}

let memoryToken = null;

/**
 * Take `token=` out of the fragment (`#token=abc`, `#artifacts&token=abc`) into the
 * session, and put the rest of the fragment back without it.
 */
export function adoptTokenFromUrl() {
  const hash = window.location.hash.replace(/^#/, "");
  if (!hash.includes("token=")) return;
  const kept = [];
  let token = null;
  for (const part of hash.split("&")) {
    if (part.startsWith("token=")) token = decodeURIComponent(part.slice("token=".length));
    else if (part) kept.push(part);
  }
  if (token) setToken(token);
  const rest = kept.length ? `#${kept.join("&")}` : "";
  window.history.replaceState(
    window.history.state,
    "",
    window.location.pathname + window.location.search + rest,
  );
}

function currentToken() {
  return getToken() ?? memoryToken;
}

/** The headers a request to this api needs: the token, when there is one. */
export function authHeaders() {
  const token = currentToken();
  return token ? { Authorization: `Bearer ${token}` } : {};
}

/**
 * Run a GraphQL operation; resolves to `data`, rejects with an ApiError carrying the first
 * error's code (the api's errors always have one) or the transport's failure.
 */
export async function gql(query, variables = {}, { signal } = {}) {
  let response;
  try {
    response = await fetch("/graphql", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json", ...authHeaders() },
      body: JSON.stringify({ query, variables }),
      signal,
      credentials: "omit",
    });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError("The api cannot be reached. Check your connection.", { code: "NETWORK" });
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    // Not JSON: a proxy's error page or an empty answer.
  }
  const first = body?.errors?.[0];
  if (first) {
    const extensions = first.extensions ?? {};
    throw new ApiError(first.message || "The api reported an error.", {
      code: extensions.code ?? `HTTP_${response.status}`,
      field: extensions.field ?? null,
      status: response.status,
    });
  }
  if (!response.ok || !body || !body.data) {
    const code = response.status === 401 ? "UNAUTHENTICATED" : `HTTP_${response.status}`;
    throw new ApiError(`The api answered ${response.status} ${response.statusText}.`, {
      code,
      status: response.status,
    });
  }
  return body.data;
}

/** The epoch milliseconds after which a signed link stops working, or null when it cannot tell. */
export function linkExpiry(href) {
  let url;
  try {
    url = new URL(href, window.location.href);
  } catch {
    return null;
  }
  const params = url.searchParams;
  // Our zip links: ?expires=<unix seconds>
  const expires = params.get("expires") ?? params.get("Expires");
  if (expires && /^\d+$/.test(expires)) return Number(expires) * 1000;
  // S3 SigV4 presigned: X-Amz-Date (20250101T120000Z) + X-Amz-Expires (seconds).
  const date = params.get("X-Amz-Date");
  const ttl = params.get("X-Amz-Expires");
  const match = date && /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(date);
  if (match && ttl && /^\d+$/.test(ttl)) {
    const [, y, mo, d, hh, mm, ss] = match.map(Number);
    return Date.UTC(y, mo - 1, d, hh, mm, ss) + Number(ttl) * 1000;
  }
  return null;
}
