// The grants window: what clients may reach which upstream, refreshed on the core's
// events (`grants-changed`, `upstreams-changed`), never by polling.
import { listen } from "@tauri-apps/api/event";
import {
  type Grant,
  type SecretEntry,
  type SignIn,
  type Upstream,
  createPersonalToken,
  deleteSecret,
  errorText,
  listGrants,
  listUpstreams,
  revokeAllGrants,
  revokeGrant,
  setSecret,
  signInUpstream,
  signOutUpstream,
  switchAccount,
} from "./api";
import { toolsRow } from "./grant_tools";
import { openGrantActivity } from "./activity";

const grantsBody = document.querySelector<HTMLTableSectionElement>("#grants tbody")!;
const grantsTable = document.querySelector<HTMLTableElement>("#grants")!;
const noGrants = document.querySelector<HTMLParagraphElement>("#no-grants")!;
const upstreamsBody = document.querySelector<HTMLTableSectionElement>("#upstreams tbody")!;
const issuer = document.querySelector<HTMLParagraphElement>("#issuer")!;
const errorBox = document.querySelector<HTMLParagraphElement>("#error")!;
const signInNote = document.querySelector<HTMLParagraphElement>("#sign-in-note")!;
const secretsBody = document.querySelector<HTMLTableSectionElement>("#secrets tbody")!;
const secretsTable = document.querySelector<HTMLTableElement>("#secrets")!;
const noSecrets = document.querySelector<HTMLParagraphElement>("#no-secrets")!;
const keychainError = document.querySelector<HTMLParagraphElement>("#keychain-error")!;
const secretForm = document.querySelector<HTMLFormElement>("#secret-form")!;
const secretName = document.querySelector<HTMLInputElement>("#secret-name")!;
const secretValue = document.querySelector<HTMLInputElement>("#secret-value")!;
const revokeAll = document.querySelector<HTMLButtonElement>("#revoke-all")!;
const revokeAllConfirm = document.querySelector<HTMLSpanElement>("#revoke-all-confirm")!;
const revokeAllQuestion = document.querySelector<HTMLSpanElement>("#revoke-all-question")!;
const revokeAllYes = document.querySelector<HTMLButtonElement>("#revoke-all-yes")!;
const revokeAllNo = document.querySelector<HTMLButtonElement>("#revoke-all-no")!;
const tokenForm = document.querySelector<HTMLFormElement>("#token-form")!;
const tokenUpstream = document.querySelector<HTMLSelectElement>("#token-upstream")!;
const tokenLabel = document.querySelector<HTMLInputElement>("#token-label")!;
const tokenExpires = document.querySelector<HTMLSelectElement>("#token-expires")!;
const tokenCreated = document.querySelector<HTMLDivElement>("#token-created")!;
const tokenValue = document.querySelector<HTMLElement>("#token-value")!;
const tokenResource = document.querySelector<HTMLElement>("#token-resource")!;
const tokenCopy = document.querySelector<HTMLButtonElement>("#token-copy")!;

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
  errorBox.textContent = errorText(e);
  errorBox.hidden = false;
}

function clearError() {
  errorBox.hidden = true;
  errorBox.textContent = "";
}

function chip(text: string, className: string): HTMLSpanElement {
  const span = document.createElement("span");
  span.className = `chip ${className}`;
  span.textContent = text;
  return span;
}

function button(text: string, className: string, onClick: (b: HTMLButtonElement) => Promise<void>) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = className;
  b.textContent = text;
  b.addEventListener("click", async () => {
    b.disabled = true;
    clearError();
    try {
      await onClick(b);
    } catch (e) {
      showError(e);
    } finally {
      b.disabled = false;
    }
  });
  return b;
}

function renderGrants(grants: Grant[]) {
  grantsBody.replaceChildren(
    ...grants.map((g) => {
      const tr = document.createElement("tr");
      tr.dataset.grantId = String(g.id);
      const client = cell(g.client_name, "client");
      const sub = document.createElement("span");
      sub.className = "sub";
      if (g.kind === "personal_token") {
        client.append(" ", chip("personal token", "unknown"));
        sub.textContent = g.expires_at === null ? "never expires" : `expires ${when(g.expires_at)}`;
      } else {
        sub.textContent = g.client_id;
      }
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
      const activity = document.createElement("button");
      activity.type = "button";
      activity.className = "activity small";
      activity.textContent = "Activity";
      activity.addEventListener("click", () => openGrantActivity(g));
      const action = document.createElement("td");
      action.append(activity, " ", revoke);
      const upstream = cell(g.account === null ? g.upstream : `${g.upstream} (${g.account})`, "upstream");
      if (g.upstream_accounts.length > 1) {
        // Switching ends the grant's open sessions; the client's next one uses the new account.
        const pick = document.createElement("select");
        pick.className = "account";
        pick.title = "Switch this grant to another account";
        for (const a of g.upstream_accounts) {
          const o = document.createElement("option");
          o.value = a;
          o.textContent = a;
          o.selected = a === g.account;
          pick.append(o);
        }
        pick.addEventListener("change", async () => {
          pick.disabled = true;
          try {
            await switchAccount(g.id, pick.value);
          } catch (e) {
            pick.disabled = false;
            showError(e);
          }
        });
        upstream.append(" ", pick);
      }
      tr.append(
        client,
        upstream,
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
  revokeAll.hidden = grants.length === 0 || !revokeAllConfirm.hidden;
  revokeAllQuestion.textContent = `Revoke all ${grants.length} grants? Every client and token loses access at once.`;
  if (grants.length === 0) revokeAllConfirm.hidden = true;
}

// "Revoke all" asks first, in the page: the button becomes a question with Yes / Cancel.
revokeAll.addEventListener("click", () => {
  revokeAll.hidden = true;
  revokeAllConfirm.hidden = false;
  revokeAllNo.focus();
});
revokeAllNo.addEventListener("click", () => {
  revokeAllConfirm.hidden = true;
  revokeAll.hidden = false;
});
revokeAllYes.addEventListener("click", async () => {
  revokeAllYes.disabled = true;
  clearError();
  try {
    await revokeAllGrants();
    revokeAllConfirm.hidden = true;
  } catch (e) {
    showError(e);
  } finally {
    revokeAllYes.disabled = false;
    await refreshGrants();
  }
});

tokenForm.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const create = document.querySelector<HTMLButtonElement>("#token-create")!;
  create.disabled = true;
  clearError();
  try {
    const t = await createPersonalToken(tokenUpstream.value, tokenLabel.value.trim(), tokenExpires.value);
    tokenValue.textContent = t.token;
    tokenResource.textContent = t.resource;
    tokenCreated.hidden = false;
    tokenCopy.textContent = "Copy";
    tokenForm.reset();
  } catch (e) {
    showError(e);
  } finally {
    create.disabled = false;
  }
});

tokenCopy.addEventListener("click", async () => {
  try {
    await navigator.clipboard.writeText(tokenValue.textContent ?? "");
    tokenCopy.textContent = "Copied";
  } catch {
    // No clipboard access: select the token so the person can copy it by hand.
    const range = document.createRange();
    range.selectNodeContents(tokenValue);
    window.getSelection()?.removeAllRanges();
    window.getSelection()?.addRange(range);
    tokenCopy.textContent = "Press Ctrl+C";
  }
});

function renderTokenUpstreams(upstreams: Upstream[]) {
  const chosen = tokenUpstream.value;
  tokenUpstream.replaceChildren(
    ...upstreams.map((u) => {
      const o = document.createElement("option");
      o.value = u.name;
      o.textContent = u.name;
      o.selected = u.name === chosen;
      return o;
    }),
  );
}

function credentials(u: Upstream): HTMLTableCellElement {
  const td = document.createElement("td");
  td.className = "credentials";
  for (const sec of u.secrets) {
    const c = chip(`${sec.name}${sec.account === null ? "" : ` (${sec.account})`}: ${sec.status}`, sec.status);
    c.title = `${sec.place}, from the OS keychain`;
    c.dataset.secret = sec.name;
    td.append(c);
  }
  if (u.sign_in) signInControls(td, u.name, u.name, u.sign_in);
  for (const a of u.account_sign_ins) {
    const label = document.createElement("span");
    label.className = "sub account";
    label.textContent = a.account;
    td.append(label);
    signInControls(td, a.sign_in_id, `${u.name} (${a.account})`, a.sign_in);
  }
  if (!td.childElementCount) td.textContent = "—";
  return td;
}

// Edit and Remove (ui/src/servers.ts handles the clicks).
function serverActions(name: string): HTMLTableCellElement {
  const td = document.createElement("td");
  td.className = "server-actions";
  for (const [text, cls] of [["Edit", "small edit-server"], ["Remove", "small revoke remove-server"]]) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = cls;
    b.textContent = text;
    b.dataset.upstream = name;
    td.append(b);
  }
  return td;
}

// Sign in / out of one sign-in: the upstream's own (`id` is its name) or one account's
// (`NAME:ACCOUNT`).
function signInControls(td: HTMLTableCellElement, id: string, shown: string, s: SignIn) {
  const pending = s.login?.state === "pending";
  if (s.signed_in) {
    td.append(chip("signed in", "signed-in"));
    td.append(
      button("Sign out", "small sign-out", async () => {
        await signOutUpstream(id);
      }),
    );
  } else {
    td.append(chip(pending ? "waiting for the browser…" : "not signed in", "signed-out"));
    td.append(
      button(pending ? "Sign in again" : "Sign in", "small primary sign-in", async () => {
        const url = await signInUpstream(id);
        signInNote.textContent = `Sign in to ${shown} in your browser. If no browser opened, visit: ${url}`;
        signInNote.hidden = false;
        await refreshUpstreams();
      }),
    );
  }
  if (s.login?.state === "failed") {
    td.append(chip(`sign-in failed: ${s.login.detail}`, "missing"));
  }
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
        credentials(u),
        cell(u.last_error ?? "—", u.last_error ? "err last-error" : "last-error"),
        serverActions(u.name),
      );
      return tr;
    }),
  );
  // The note about a sign-in in progress goes once none is pending.
  const pending = (s: SignIn | null) => s?.login?.state === "pending";
  if (!upstreams.some((u) => pending(u.sign_in) || u.account_sign_ins.some((a) => pending(a.sign_in))))
    signInNote.hidden = true;
}

function renderSecrets(secrets: SecretEntry[], error: string | null) {
  secretsBody.replaceChildren(
    ...secrets.map((s) => {
      const tr = document.createElement("tr");
      tr.dataset.secret = s.name;
      const status = document.createElement("td");
      status.className = "status";
      status.append(chip(s.status, s.status));
      const actions = document.createElement("td");
      actions.append(
        button(s.status === "stored" ? "Replace…" : "Set…", "small set", async () => {
          secretName.value = s.name;
          secretValue.focus();
        }),
      );
      if (s.status !== "missing") {
        actions.append(
          button("Delete", "small revoke delete", async () => {
            await deleteSecret(s.name);
          }),
        );
      }
      tr.append(
        cell(s.name, "name"),
        status,
        cell(s.used_by.length ? s.used_by.join(", ") : "not used by any upstream", "sub-cell used-by"),
        actions,
      );
      return tr;
    }),
  );
  secretsTable.hidden = secrets.length === 0;
  noSecrets.hidden = secrets.length !== 0;
  keychainError.textContent = error ?? "";
  keychainError.hidden = error === null;
}

secretForm.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const save = document.querySelector<HTMLButtonElement>("#secret-save")!;
  save.disabled = true;
  clearError();
  try {
    await setSecret(secretName.value.trim(), secretValue.value);
    secretForm.reset();
  } catch (e) {
    showError(e);
  } finally {
    // The value leaves the page either way: it lives in the keychain or nowhere.
    secretValue.value = "";
    save.disabled = false;
  }
});

async function refreshGrants() {
  try {
    const grants = await listGrants();
    renderGrants(grants);
    await showTools(grants);
  } catch (e) {
    showError(e);
  }
}

/// Each OAuth grant's tools, in a row under it.
async function showTools(grants: Grant[]) {
  for (const g of grants.filter((g) => g.kind === "oauth")) {
    const row = await toolsRow(g.id, 7, showError);
    grantsBody.querySelector(`tr[data-grant-id="${g.id}"]:not(.tools-row)`)?.after(row);
  }
}

async function refreshUpstreams() {
  try {
    const o = await listUpstreams();
    issuer.textContent = `Listening on ${o.issuer}`;
    renderUpstreams(o.upstreams);
    renderTokenUpstreams(o.upstreams);
    renderSecrets(o.secrets, o.keychain_error);
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
