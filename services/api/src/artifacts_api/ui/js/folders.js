// Folder paths of the Artifacts tab as the api names them ("" for the top, "sub/deep/"):
// breadcrumbs and what a row shows. Pure: no DOM.

/** "sub/deep/" -> [{label: "All files", path: ""}, {label: "sub", path: "sub/"}, {label: "deep", path: "sub/deep/"}] */
export function crumbs(path) {
  const trail = [{ label: "All files", path: "" }];
  let sofar = "";
  for (const part of path.split("/").filter(Boolean)) {
    sofar += `${part}/`;
    trail.push({ label: part, path: sofar });
  }
  return trail;
}

/** The parent of a folder path: "sub/deep/" -> "sub/", "sub/" -> "". */
export function parentOf(path) {
  const trimmed = path.replace(/\/$/, "");
  const cut = trimmed.lastIndexOf("/");
  return cut < 0 ? "" : trimmed.slice(0, cut + 1);
}

/** A file's name within the folder listed: "sub/deep/y.txt" in "sub/deep/" -> "y.txt". */
export function nameIn(path, fullName) {
  return fullName.startsWith(path) ? fullName.slice(path.length) : fullName;
}
