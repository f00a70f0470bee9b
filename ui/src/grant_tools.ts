// A grant's tools in the grants window: each tool's choice (editable) and state; a tool
// the server changed since it was approved shows the change as a diff, with
// "Approve change" (allow what it serves now) and "Keep blocked".
import { type GrantToolsView, type ToolChoice, type ToolView, grantTools, setToolChoice } from "./api";

const CHOICES: [ToolChoice, string][] = [
  ["allow", "Allow"],
  ["ask", "Ask each time"],
  ["block", "Block"],
];

function el<K extends keyof HTMLElementTagNameMap>(tag: K, className = "", text = ""): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text) e.textContent = text;
  return e;
}

function toolLine(g: GrantToolsView, t: ToolView, onError: (e: unknown) => void): HTMLElement {
  const li = el("li", `tool ${t.status}`);
  li.dataset.tool = t.name;
  const head = el("div", "tool-head");
  head.append(el("span", "tool-name", t.name));
  if (t.status === "changed") head.append(el("span", "chip missing", "changed by the server: suspended"));
  if (t.status === "new") head.append(el("span", "chip missing", "new since consent: hidden"));
  const select = el("select");
  select.setAttribute("aria-label", `Access to ${t.name}`);
  for (const [value, label] of CHOICES) {
    const o = el("option", "", label);
    o.value = value;
    o.selected = value === t.choice && t.status === "approved";
    select.append(o);
  }
  if (t.status !== "approved") {
    const o = el("option", "", "Review the change first");
    o.value = "";
    o.selected = true;
    o.disabled = true;
    select.prepend(o);
  }
  select.addEventListener("change", () => {
    const choice = select.value as ToolChoice;
    void setToolChoice(g.grant_id, t.name, choice).catch(onError);
  });
  head.append(select);
  li.append(head);
  if (t.diff.length > 0) {
    const pre = el("pre", "diff");
    for (const line of t.diff) {
      const mark = line.op === "added" ? "+ " : line.op === "removed" ? "- " : "  ";
      pre.append(el("span", `diff-${line.op}`, `${mark}${line.text}\n`));
    }
    li.append(pre);
    const actions = el("div", "tool-actions");
    const approve = el("button", "primary small approve-change", "Approve change");
    approve.type = "button";
    approve.addEventListener("click", () => void setToolChoice(g.grant_id, t.name, "allow").catch(onError));
    const keep = el("button", "secondary small keep-blocked", "Keep blocked");
    keep.type = "button";
    keep.addEventListener("click", () => void setToolChoice(g.grant_id, t.name, "block").catch(onError));
    actions.append(approve, keep);
    li.append(actions);
  }
  return li;
}

/// The row under a grant that lists its tools; `null` for a grant that chose none.
export async function toolsRow(grantId: number, columns: number, onError: (e: unknown) => void) {
  const g = await grantTools(grantId);
  const tr = el("tr", "tools-row");
  tr.dataset.toolsOf = String(grantId);
  const td = el("td");
  td.colSpan = columns;
  if (!g.pinned) {
    td.append(el("span", "muted small", "All tools allowed (none were chosen at consent)."));
  } else {
    const ul = el("ul", "tools");
    ul.append(...g.tools.map((t) => toolLine(g, t, onError)));
    td.append(ul);
  }
  tr.append(td);
  return tr;
}
