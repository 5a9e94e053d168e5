// The Artifacts tab's retention line and its actions: why the folder is kept or when it goes
// (`artifact.retention.reason`, the sentence the janitor's run result gives too), and Keep
// (admins), Extend by 7 days and Delete now (the job's group and admins) through
// `setPhJobArtifactExpiry` and `deletePhJobArtifact`. The api decides who may do what; the
// buttons shown follow `viewer.admin` so nobody is offered what would be refused.

import { ApiError, gql } from "./api.js";
import { h, replaceChildren } from "./dom.js";

const EXTEND_DAYS = 7;
const DAY_MS = 86400000;

const SET_EXPIRY = `
mutation SetExpiry($id: ID!, $at: String) {
  setPhJobArtifactExpiry(where: {id: $id}, expiredAt: $at) { retention { state reason } }
}`;

const DELETE = `mutation Delete($id: ID!) { deletePhJobArtifact(where: {id: $id}) }`;

/** The retention line for `job` (with `artifact.retention`); `onChanged` reloads the tab. */
export function retentionLine(job, viewer, { onChanged, onUnauthenticated }) {
  const retention = job.artifact.retention;
  const message = h("p", { class: "retention-message", role: "status" });
  const box = h("div", { class: "artifact-retention", dataset: { state: retention.state } });

  async function run(action) {
    message.textContent = "";
    for (const button of box.querySelectorAll("button")) button.disabled = true;
    try {
      await action();
      onChanged();
    } catch (error) {
      if (error instanceof ApiError && error.unauthenticated) onUnauthenticated(error);
      else message.textContent = error.message;
      for (const button of box.querySelectorAll("button")) button.disabled = false;
    }
  }

  function setExpiry(at) {
    return run(() => gql(SET_EXPIRY, { id: job.id, at }));
  }

  function extend() {
    // From the current expiry when there is one ahead, else from now.
    const current = retention.expiredAt ? Date.parse(retention.expiredAt) : NaN;
    const base = Number.isFinite(current) && current > Date.now() ? current : Date.now();
    return setExpiry(new Date(base + EXTEND_DAYS * DAY_MS).toISOString());
  }

  function confirmDelete() {
    const yes = h(
      "button",
      {
        type: "button",
        class: "button button-danger",
        onclick: () => run(() => gql(DELETE, { id: job.id })),
      },
      "Delete now",
    );
    const no = h("button", { type: "button", class: "button", onclick: () => replaceChildren(actions, ...buttons) }, "Cancel");
    replaceChildren(actions, h("span", {}, "Delete every artifact of this job? This cannot be undone."), yes, no);
    yes.focus();
  }

  const buttons = [];
  if (viewer.admin && retention.state !== "KEPT") {
    buttons.push(h("button", { type: "button", class: "button", onclick: () => setExpiry(null) }, "Keep"));
  }
  buttons.push(
    h("button", { type: "button", class: "button", onclick: extend }, `Extend ${EXTEND_DAYS} days`),
    h("button", { type: "button", class: "button button-quiet", onclick: confirmDelete }, "Delete"),
  );
  const actions = h("div", { class: "actions retention-actions" }, buttons);
  const sentence = retention.reason.charAt(0).toUpperCase() + retention.reason.slice(1);
  replaceChildren(box, h("p", { class: "retention-reason" }, `${sentence}.`), actions, message);
  return box;
}
