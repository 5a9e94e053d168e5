// The artifact listing as rows of a folder-aware table: files sorted by path, and a row for
// each folder before its contents, with the folder's file count and size. Pure: no DOM.

/** Sort by path, by UTF-16 code units: every folder's contents are then one contiguous run. */
export function byPath(a, b) {
  if (a.name < b.name) return -1;
  if (a.name > b.name) return 1;
  return 0;
}

/**
 * items [{name, size, ...}] -> rows:
 *   {kind: "folder", path: "sub/", label: "sub/", depth, count, size, parent}
 *   {kind: "file", item, label: "test.txt", depth, parent}
 * `parent` is the folder path a row sits in ("" at the top), so a collapsed folder can hide
 * everything whose parent starts with its path.
 */
export function folderRows(items) {
  const sorted = [...items].sort(byPath);
  const totals = new Map();
  for (const item of sorted) {
    const parts = item.name.split("/");
    let path = "";
    for (const part of parts.slice(0, -1)) {
      path += `${part}/`;
      const total = totals.get(path) ?? { count: 0, size: 0 };
      total.count += 1;
      total.size += item.size;
      totals.set(path, total);
    }
  }
  const rows = [];
  let open = [];
  for (const item of sorted) {
    const parts = item.name.split("/");
    const folders = parts.slice(0, -1);
    let shared = 0;
    while (shared < open.length && shared < folders.length && open[shared] === folders[shared]) {
      shared += 1;
    }
    open = folders.slice(0, shared);
    for (let depth = shared; depth < folders.length; depth += 1) {
      open.push(folders[depth]);
      const path = `${folders.slice(0, depth + 1).join("/")}/`;
      const parent = depth ? `${folders.slice(0, depth).join("/")}/` : "";
      rows.push({ kind: "folder", path, label: `${folders[depth]}/`, depth, parent, ...totals.get(path) });
    }
    rows.push({
      kind: "file",
      item,
      label: parts[parts.length - 1],
      depth: folders.length,
      parent: folders.length ? `${folders.join("/")}/` : "",
    });
  }
  return rows;
}
