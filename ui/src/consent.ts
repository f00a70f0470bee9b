// A consent window: one authorization request, Approve or Deny. The window's label
// (`consent-<id>`) names the request, so the page never handles the id itself.
import { type ConsentView, type ToolChoice, consentDetails, decideConsent, errorText } from "./api";

const $ = <T extends HTMLElement>(sel: string) => document.querySelector<T>(sel)!;
const deny = $<HTMLButtonElement>("#deny");
const approve = $<HTMLButtonElement>("#approve");
const errorBox = $<HTMLParagraphElement>("#error");

// Focus starts on Deny: Enter on a window that popped up unexpectedly must not approve.
deny.focus();

function show(d: ConsentView) {
  $("#headline").textContent = `Allow “${d.client_name}” to use ${d.upstream}?`;
  $("#redirect-host").textContent = d.redirect_host;
  $("#client-id").textContent = d.client_id;
  $("#upstream").textContent = d.upstream;
  $("#scope").textContent = d.scope;
  if (d.described_by !== null) {
    $("#described-by").textContent = d.described_by;
    $("#described-by-row").hidden = false;
    $("#described-by-label").hidden = false;
  }
  if (d.ignored_scopes !== null) {
    const ignored = $<HTMLElement>("#ignored-scopes");
    ignored.textContent = ` (not offered, ignored: ${d.ignored_scopes})`;
    ignored.hidden = false;
  }
  if (d.accounts.length > 0) {
    $("#accounts-upstream").textContent = d.upstream;
    const list = $<HTMLDivElement>("#account-list");
    for (const a of d.accounts) {
      // None checked: the person chooses; the last choice is only named.
      const label = document.createElement("label");
      const radio = document.createElement("input");
      radio.type = "radio";
      radio.name = "account";
      radio.value = a;
      label.append(radio, ` ${a}`);
      if (a === d.suggested_account) {
        const hint = document.createElement("small");
        hint.className = "muted";
        hint.textContent = " (chosen last time)";
        label.append(hint);
      }
      list.append(label, document.createElement("br"));
    }
    $("#accounts").hidden = false;
  }
  showTools(d);
  $("#access-warning").textContent = d.access_warning;
  const warning = $<HTMLParagraphElement>("#warning");
  if (!d.redirect_is_loopback) {
    warning.textContent =
      `The approval goes to ${d.redirect_host}, which is not this computer. ` +
      "Approve only if you trust that site.";
    warning.hidden = false;
  }
}

// The person's choice per tool, starting from what the broker proposes.
const choices: Record<string, ToolChoice> = {};

function showTools(d: ConsentView) {
  if (d.tools_error !== null) {
    const e = $<HTMLParagraphElement>("#tools-error");
    e.textContent = `The tools of ${d.upstream} could not be listed (${d.tools_error}). Approving allows all of them.`;
    e.hidden = false;
    return;
  }
  if (d.tools.length === 0) return;
  $("#tools-section").hidden = false;
  const labels: [ToolChoice, string][] = [
    ["allow", "Allow"],
    ["ask", "Ask each time"],
    ["block", "Block"],
  ];
  $("#tools").replaceChildren(
    ...d.tools.map((t) => {
      choices[t.name] = t.choice;
      const li = document.createElement("li");
      li.className = "tool";
      li.dataset.tool = t.name;
      const head = document.createElement("div");
      head.className = "tool-head";
      const name = document.createElement("span");
      name.className = "tool-name";
      name.textContent = t.title ?? t.name;
      head.append(name);
      const tags: [boolean, string, string][] = [
        [t.destructive, "destructive", "destructive"],
        [t.read_only, "read-only", "stored"],
        [t.open_world, "open world", "unknown"],
      ];
      for (const [on, text, cls] of tags) {
        if (!on) continue;
        const c = document.createElement("span");
        c.className = `chip ${cls}`;
        c.textContent = text;
        head.append(c);
      }
      const select = document.createElement("select");
      select.setAttribute("aria-label", `Access to ${t.name}`);
      for (const [value, label] of labels) {
        const o = document.createElement("option");
        o.value = value;
        o.textContent = label;
        o.selected = value === t.choice;
        select.append(o);
      }
      select.addEventListener("change", () => {
        choices[t.name] = select.value as ToolChoice;
      });
      head.append(select);
      li.append(head);
      if (t.description !== null) {
        const desc = document.createElement("div");
        desc.className = "tool-desc";
        desc.textContent = t.description;
        li.append(desc);
      }
      return li;
    }),
  );
}

async function decide(yes: boolean) {
  deny.disabled = true;
  approve.disabled = true;
  try {
    const chosen = document.querySelector<HTMLInputElement>('input[name="account"]:checked');
    await decideConsent(yes, choices, chosen?.value ?? null); // the shell closes this window
  } catch (e) {
    errorBox.textContent = errorText(e);
    errorBox.hidden = false;
    // A refused choice leaves the question open: choose and approve again.
    deny.disabled = false;
    approve.disabled = false;
  }
}

deny.addEventListener("click", () => void decide(false));
approve.addEventListener("click", () => void decide(true));

try {
  show(await consentDetails());
  document.body.dataset.ready = "true";
} catch (e) {
  approve.disabled = true;
  errorBox.textContent = `This request is no longer pending (${errorText(e)}).`;
  errorBox.hidden = false;
}
deny.focus();
