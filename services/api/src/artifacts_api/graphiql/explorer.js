// GraphiQL on this api's /graphql, from the files the api package ships (no CDN).
//
// When the web UI has a bearer token for this tab (sessionStorage, see ui/js/api.js), the
// explorer starts with it in its headers; otherwise paste one into the Headers tab.

(function start() {
  const root = document.getElementById("graphiql");
  if (typeof window.GraphiQL === "undefined" || typeof window.React === "undefined") {
    root.textContent = "";
    const note = document.createElement("p");
    note.className = "missing";
    note.textContent =
      "The explorer's files are not installed in this api package " +
      "(services/api/fetch_explorer.py puts them there). GraphQL itself answers at POST /graphql.";
    root.appendChild(note);
    return;
  }
  let token = null;
  try {
    token = window.sessionStorage.getItem("artifacts.token");
  } catch {
    token = null;
  }
  const fetcher = window.GraphiQL.createFetcher({ url: "/graphql" });
  const props = { fetcher, defaultEditorToolsVisibility: true };
  if (token) props.defaultHeaders = JSON.stringify({ Authorization: `Bearer ${token}` }, null, 2);
  window.ReactDOM.createRoot(root).render(window.React.createElement(window.GraphiQL, props));
})();
