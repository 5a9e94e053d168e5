// graphql-http's server audit against one URL: every audit's result as JSON on stdout.
// AUDIT_TOKEN, when set, goes along as a bearer token (for the api's token modes).
const { auditServer } = require("graphql-http");

async function main() {
  const url = process.argv[2];
  const token = process.env.AUDIT_TOKEN;
  const fetchFn = token
    ? (input, init = {}) =>
        fetch(input, { ...init, headers: { ...(init.headers || {}), authorization: `Bearer ${token}` } })
    : fetch;
  const results = await auditServer({ url, fetchFn });
  const report = [];
  for (const result of results) {
    const entry = { id: result.id, name: result.name, status: result.status };
    if (result.status !== "ok") {
      entry.reason = result.reason;
      entry.response = { status: result.response.status, body: await result.response.text() };
    }
    report.push(entry);
  }
  process.stdout.write(JSON.stringify(report));
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
