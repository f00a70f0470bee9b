// The grants window: what clients may reach which upstream, refreshed on the core's
// events (`grants-changed`, `upstreams-changed`), never by polling.
import { listen } from "@tauri-apps/api/event";
import { type Grant, type Upstream, listGrants, listUpstreams, revokeGrant } from "./api";

const grantsBody = document.querySelector<HTMLTableSectionElement>("#grants tbody")!;
const grantsTable = document.querySelector<HTMLTableElement>("#grants")!;
const noGrants = document.querySelector<HTMLParagraphElement>("#no-grants")!;
const upstreamsBody = document.querySelector<HTMLTableSectionElement>("#upstreams tbody")!;
const issuer = document.querySelector<HTMLParagraphElement>("#issuer")!;
const errorBox = document.querySelector<HTMLParagraphElement>("#error")!;

function cell(text: string, className?: string): HTMLTableCellElement {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function when(unix: number | null): string {
  if (unix === null) return "never";
  return new Date(unix * 1000).toLocaleString(undefined, {
    dateStyle: "medium",
    timeStyle: "short",
  });
}

function showError(e: unknown) {
  errorBox.textContent = String(e);
  errorBox.hidden = false;
}

function renderGrants(grants: Grant[]) {
  grantsBody.replaceChildren(
    ...grants.map((g) => {
      const tr = document.createElement("tr");
      tr.dataset.grantId = String(g.id);
      const client = cell(g.client_name, "client");
      const sub = document.createElement("span");
      sub.className = "sub";
      sub.textContent = g.client_id;
      client.append(sub);
      const revoke = document.createElement("button");
      revoke.type = "button";
      revoke.className = "revoke";
      revoke.textContent = "Revoke";
      revoke.addEventListener("click", async () => {
        revoke.disabled = true;
        try {
          await revokeGrant(g.id);
        } catch (e) {
          revoke.disabled = false;
          showError(e);
        }
      });
      const action = document.createElement("td");
      action.append(revoke);
      tr.append(
        client,
        cell(g.upstream, "upstream"),
        cell(g.scope, "scope"),
        cell(when(g.created_at)),
        cell(when(g.last_used_at)),
        cell(String(g.sessions), "num sessions"),
        action,
      );
      return tr;
    }),
  );
  grantsTable.hidden = grants.length === 0;
  noGrants.hidden = grants.length !== 0;
}

function renderUpstreams(upstreams: Upstream[]) {
  upstreamsBody.replaceChildren(
    ...upstreams.map((u) => {
      const tr = document.createElement("tr");
      tr.dataset.upstream = u.name;
      tr.append(
        cell(u.name),
        cell(u.endpoint, "sub-cell"),
        cell(String(u.sessions), "num sessions"),
        cell(u.last_error ?? "—", u.last_error ? "err" : undefined),
      );
      return tr;
    }),
  );
}

async function refreshGrants() {
  try {
    renderGrants(await listGrants());
  } catch (e) {
    showError(e);
  }
}

async function refreshUpstreams() {
  try {
    const o = await listUpstreams();
    issuer.textContent = `Listening on ${o.issuer}`;
    renderUpstreams(o.upstreams);
  } catch (e) {
    showError(e);
  }
}

await listen("grants-changed", refreshGrants);
await listen("upstreams-changed", () => {
  // Session counts appear in both tables.
  void refreshGrants();
  void refreshUpstreams();
});
await Promise.all([refreshGrants(), refreshUpstreams()]);
document.body.dataset.ready = "true";
