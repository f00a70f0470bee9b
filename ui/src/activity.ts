// A grant's detail view in the grants window: its calls (newest first, filtered by tool
// and outcome, paged), counts per tool, errors, last use and authorization history, as
// the core's `grant_activity` returns them (src-tauri/gateway/activity.rs).
import { type ActivityRow, type Grant, type GrantActivity, errorText, grantActivity, grantTitle } from "./api";

const panel = document.querySelector<HTMLElement>("#grant-activity")!;
const title = document.querySelector<HTMLElement>("#activity-title")!;
const lastUsed = document.querySelector<HTMLElement>("#activity-last-used")!;
const countsBody = document.querySelector<HTMLTableSectionElement>("#activity-counts tbody")!;
const callsBody = document.querySelector<HTMLTableSectionElement>("#activity-calls tbody")!;
const noCalls = document.querySelector<HTMLParagraphElement>("#activity-no-calls")!;
const errorsList = document.querySelector<HTMLUListElement>("#activity-errors")!;
const historyList = document.querySelector<HTMLUListElement>("#activity-history")!;
const toolFilter = document.querySelector<HTMLSelectElement>("#activity-tool")!;
const outcomeFilter = document.querySelector<HTMLSelectElement>("#activity-outcome")!;
const more = document.querySelector<HTMLButtonElement>("#activity-more")!;
const close = document.querySelector<HTMLButtonElement>("#activity-close")!;
const errorBox = document.querySelector<HTMLParagraphElement>("#activity-error")!;

let grant: Grant | null = null;
let nextBefore: number | null = null;

function at(ms: number | null): string {
  if (ms === null) return "never";
  return new Date(ms).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" });
}

// A call's time: the time of day, with the date when it is not today.
function shortAt(ms: number): string {
  const d = new Date(ms);
  const today = d.toDateString() === new Date().toDateString();
  return today
    ? d.toLocaleTimeString(undefined, { timeStyle: "medium" })
    : d.toLocaleString(undefined, { dateStyle: "short", timeStyle: "short" });
}

function td(text: string, className?: string): HTMLTableCellElement {
  const c = document.createElement("td");
  c.textContent = text;
  if (className) c.className = className;
  return c;
}

function outcomeText(r: ActivityRow): string {
  return r.error_code === null ? r.outcome : `${r.outcome} (${r.error_code})`;
}

function callRow(r: ActivityRow): HTMLTableRowElement {
  const tr = document.createElement("tr");
  tr.dataset.activityId = String(r.id);
  const duration = r.duration_us === null ? "" : `${(r.duration_us / 1000).toFixed(1)} ms`;
  const size = r.response_bytes === null ? "" : `${r.response_bytes} B`;
  const time = td(shortAt(r.at_ms), "time");
  time.title = at(r.at_ms);
  tr.append(
    time,
    td(r.account ?? "", "account-col"),
    td(r.method ?? "", "method"),
    td(r.target ?? "", "target"),
    td(outcomeText(r), r.outcome === "ok" ? "outcome" : "outcome err"),
    td(duration, "num"),
    td(size, "num"),
    td(r.reference ?? "", "reference"),
  );
  return tr;
}

// What an authorization event says, in a line.
function historyText(r: ActivityRow): string {
  let detail: Record<string, unknown> = {};
  try {
    detail = r.detail ? JSON.parse(r.detail) : {};
  } catch {
    detail = {};
  }
  switch (r.event) {
    case "registered":
      return `registered as ${String(detail.client_name ?? r.client_id)}`;
    case "consent_approved":
    case "consent_denied": {
      const shown = (detail.shown ?? {}) as Record<string, unknown>;
      const verb = r.event === "consent_approved" ? "approved" : "denied";
      return `${verb} in the ${String(detail.shown_in)}: ${String(shown.client_name)} → ${String(shown.upstream)}${r.account === null ? "" : ` (${r.account})`}, redirect to ${String(shown.redirect_host)}, scope ${String(shown.scope)}`;
    }
    case "tokens_issued":
      return "tokens issued";
    case "tokens_refreshed":
      return "tokens refreshed";
    case "replay":
      return `${String(detail.replayed)} replayed: grant revoked`;
    case "revoked":
      return `revoked by ${String(detail.by)}${detail.revoke_all ? " (revoke all)" : ""}`;
    case "rate_limited":
      return `rate limited (${r.method}), reference ${r.reference}`;
    default:
      return `${r.event} ${r.outcome}${r.reference ? `, reference ${r.reference}` : ""}`;
  }
}

function li(text: string): HTMLLIElement {
  const l = document.createElement("li");
  l.textContent = text;
  return l;
}

function render(a: GrantActivity, append: boolean) {
  lastUsed.textContent = `Last used: ${at(a.last_used_ms)}`;
  const tool = toolFilter.value;
  toolFilter.replaceChildren(
    new Option("all tools", ""),
    ...a.counts.map((c) => new Option(c.name, c.name)),
  );
  toolFilter.value = tool;
  countsBody.replaceChildren(
    ...a.counts.map((c) => {
      const tr = document.createElement("tr");
      tr.append(td(c.name, "target"), td(String(c.calls), "num"), td(String(c.errors), c.errors ? "num err" : "num"));
      return tr;
    }),
  );
  if (append) callsBody.append(...a.calls.map(callRow));
  else callsBody.replaceChildren(...a.calls.map(callRow));
  noCalls.hidden = callsBody.children.length > 0;
  nextBefore = a.next_before;
  more.hidden = nextBefore === null;
  errorsList.replaceChildren(
    ...(a.errors.length
      ? a.errors.map((r) => li(`${at(r.at_ms)}  ${r.method ?? ""} ${r.target ?? ""}: ${outcomeText(r)}${r.reference ? `, reference ${r.reference}` : ""}`))
      : [li("none")]),
  );
  historyList.replaceChildren(...a.history.map((r) => li(`${at(r.at_ms)}  ${historyText(r)}`)));
}

async function load(append: boolean) {
  if (!grant) return;
  errorBox.hidden = true;
  try {
    const a = await grantActivity(grant.id, {
      tool: toolFilter.value || undefined,
      outcome: outcomeFilter.value || undefined,
      before: append ? (nextBefore ?? undefined) : undefined,
    });
    render(a, append);
    panel.dataset.loaded = "true";
  } catch (e) {
    errorBox.textContent = errorText(e);
    errorBox.hidden = false;
  }
}

export async function openGrantActivity(g: Grant) {
  grant = g;
  panel.dataset.grantId = String(g.id);
  delete panel.dataset.loaded;
  title.textContent = grantTitle(g);
  // The account column only for a grant on an upstream with accounts (issue 15).
  document.querySelector("#activity-calls")!.classList.toggle("no-accounts", g.account === null);
  toolFilter.value = "";
  outcomeFilter.value = "";
  panel.hidden = false;
  await load(false);
  panel.scrollIntoView({ block: "start" });
}

toolFilter.addEventListener("change", () => load(false));
outcomeFilter.addEventListener("change", () => load(false));
more.addEventListener("click", () => load(true));
close.addEventListener("click", () => {
  panel.hidden = true;
  grant = null;
});
