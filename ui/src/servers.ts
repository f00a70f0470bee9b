// The servers part of the main window: what to do on a first start, the form that adds
// or edits a server, removing one, and importing the servers MCP clients already have.
// Every check is the broker's (the config loader's messages are shown as they come); the
// page only collects the form. A secret typed here goes to the keychain and the field is
// cleared, whatever the outcome.
import { listen } from "@tauri-apps/api/event";
import {
  type Applied,
  type ConfigRejected,
  type FormValue,
  type ImportSource,
  type PlanView,
  type ServerForm,
  type ValueKind,
  addServer,
  errorText,
  importPreview,
  importServers,
  importSources,
  listUpstreams,
  removeServer,
  serverForm,
  updateServer,
} from "./api";

const $ = <T extends HTMLElement>(sel: string) => document.querySelector<T>(sel)!;

const firstStart = $<HTMLElement>("#first-start");
const editor = $<HTMLElement>("#server-editor");
const editorTitle = $<HTMLElement>("#server-editor-title");
const form = $<HTMLFormElement>("#server-form");
const nameInput = $<HTMLInputElement>("#server-name");
const transport = $<HTMLSelectElement>("#server-transport");
const stdioFields = $<HTMLElement>("#stdio-fields");
const remoteFields = $<HTMLElement>("#remote-fields");
const command = $<HTMLInputElement>("#server-command");
const args = $<HTMLTextAreaElement>("#server-args");
const cwd = $<HTMLInputElement>("#server-cwd");
const url = $<HTMLInputElement>("#server-url");
const clientId = $<HTMLInputElement>("#server-client-id");
const valuesTitle = $<HTMLElement>("#values-title");
const valuesBody = $<HTMLTableSectionElement>("#server-values tbody");
const addValue = $<HTMLButtonElement>("#server-add-value");
const serverError = $<HTMLElement>("#server-error");
const save = $<HTMLButtonElement>("#server-save");
const importPanel = $<HTMLElement>("#import-panel");
const sourcesBox = $<HTMLElement>("#import-sources");
const planBox = $<HTMLElement>("#import-plan");
const planList = $<HTMLElement>("#import-plan-list");
const importError = $<HTMLElement>("#import-error");
const importDone = $<HTMLElement>("#import-done");
const importConfirm = $<HTMLButtonElement>("#import-confirm");
const configError = $<HTMLElement>("#config-error");
const configErrorText = $<HTMLElement>("#config-error-text");

// The server being edited (null: adding one).
let editing: string | null = null;
// The import being reviewed.
let reviewing: { client: string; servers: string[] } | null = null;

function say(box: HTMLElement, text: string | null) {
  box.textContent = text ?? "";
  box.hidden = text === null;
}

// The line at the top of the window (a refused hand edit, a failed removal).
function showAlert(text: string) {
  configErrorText.textContent = text;
  configError.hidden = false;
}
function hideAlert() {
  configError.hidden = true;
  configErrorText.textContent = "";
}

function el<K extends keyof HTMLElementTagNameMap>(tag: K, props: Record<string, unknown> = {}): HTMLElementTagNameMap[K] {
  return Object.assign(document.createElement(tag), props);
}

// ---- the form ----

function valueRow(v: FormValue) {
  const tr = el("tr", { className: "value-row" });
  const key = el("input", { className: "value-key", value: v.key, spellcheck: false });
  const kind = el("select", { className: "value-kind" });
  for (const [k, label] of [["literal", "typed here"], ["env", "from the environment"], ["secret", "a secret (keychain)"]]) {
    kind.append(el("option", { value: k, textContent: label, selected: v.kind === k }));
  }
  const value = el("input", { className: "value-text", value: v.value, spellcheck: false });
  const prefix = el("input", { className: "value-prefix", value: v.prefix, placeholder: "prefix, e.g. Bearer", spellcheck: false });
  tr.dataset.secret = v.secret;
  const shape = () => {
    const secret = kind.value === "secret";
    value.type = secret ? "password" : "text";
    value.placeholder = secret
      ? (tr.dataset.secret ? `stored as ${tr.dataset.secret}; type to replace` : "typed into the keychain")
      : kind.value === "env" ? "variable name" : "";
    prefix.hidden = !secret || transport.value !== "remote";
  };
  kind.addEventListener("change", () => {
    value.value = "";
    shape();
  });
  shape();
  const remove = el("button", { type: "button", className: "small", textContent: "Remove" });
  remove.addEventListener("click", () => tr.remove());
  const valueCell = el("td");
  valueCell.append(value, prefix);
  const keyCell = el("td");
  keyCell.append(key);
  const kindCell = el("td");
  kindCell.append(kind);
  const actions = el("td");
  actions.append(remove);
  tr.append(keyCell, kindCell, valueCell, actions);
  valuesBody.append(tr);
}

function showTransport() {
  const remote = transport.value === "remote";
  stdioFields.hidden = remote;
  remoteFields.hidden = !remote;
  valuesTitle.textContent = remote ? "Headers" : "Environment";
  addValue.textContent = remote ? "Add a header" : "Add a variable";
  for (const p of valuesBody.querySelectorAll<HTMLInputElement>(".value-prefix")) {
    const kind = p.closest("tr")!.querySelector<HTMLSelectElement>(".value-kind")!;
    p.hidden = !remote || kind.value !== "secret";
  }
}

function openEditor(f: ServerForm | null) {
  importPanel.hidden = true;
  editing = f ? f.name : null;
  editorTitle.textContent = f ? `Edit ${f.name}` : "Add a server";
  nameInput.value = f?.name ?? "";
  nameInput.readOnly = f !== null;
  transport.value = f?.transport ?? "stdio";
  transport.disabled = f !== null;
  command.value = f?.command ?? "";
  args.value = (f?.args ?? []).join("\n");
  cwd.value = f?.cwd ?? "";
  url.value = f?.url ?? "";
  clientId.value = f?.client_id ?? "";
  valuesBody.replaceChildren();
  for (const v of f?.values ?? []) valueRow(v);
  showTransport();
  say(serverError, null);
  editor.hidden = false;
  editor.scrollIntoView();
  (f ? command : nameInput).focus();
}

function collect(): ServerForm {
  const values: FormValue[] = [...valuesBody.querySelectorAll<HTMLTableRowElement>("tr")].map((tr) => ({
    key: tr.querySelector<HTMLInputElement>(".value-key")!.value.trim(),
    kind: tr.querySelector<HTMLSelectElement>(".value-kind")!.value as ValueKind,
    value: tr.querySelector<HTMLInputElement>(".value-text")!.value,
    secret: tr.dataset.secret ?? "",
    prefix: tr.querySelector<HTMLInputElement>(".value-prefix")!.value,
  }));
  return {
    name: nameInput.value.trim(),
    transport: transport.value === "remote" ? "remote" : "stdio",
    command: command.value.trim(),
    args: args.value.split("\n").map((a) => a.trim()).filter((a) => a !== ""),
    cwd: cwd.value.trim(),
    url: url.value.trim(),
    client_id: clientId.value.trim(),
    values,
  };
}

function closeEditor() {
  editor.hidden = true;
  // Secrets typed and not saved leave the page.
  valuesBody.replaceChildren();
  editing = null;
}

function appliedText(a: Applied): string {
  const parts = [];
  if (a.restart_needed) parts.push("The [broker] settings in the file changed; restart mcp-broker to apply them.");
  if (a.warning) parts.push(a.warning);
  return parts.join(" ");
}

form.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  save.disabled = true;
  say(serverError, null);
  const f = collect();
  try {
    const applied = editing === null ? await addServer(f) : await updateServer(f);
    closeEditor();
    const note = appliedText(applied);
    if (note) showAlert(note);
  } catch (e) {
    say(serverError, errorText(e));
  } finally {
    // A typed secret is in the keychain now, or nowhere: never kept in the page.
    for (const p of valuesBody.querySelectorAll<HTMLInputElement>("input.value-text[type=password]")) p.value = "";
    save.disabled = false;
  }
});

transport.addEventListener("change", showTransport);
addValue.addEventListener("click", () => valueRow({ key: "", kind: "literal", value: "", secret: "", prefix: "" }));
$("#server-cancel").addEventListener("click", closeEditor);
$("#add-server").addEventListener("click", () => openEditor(null));
$("#first-add").addEventListener("click", () => openEditor(null));

// Edit and Remove in the upstream rows (rendered by grants.ts).
$("#upstreams tbody").addEventListener("click", async (ev) => {
  const b = (ev.target as HTMLElement).closest<HTMLButtonElement>("button");
  const name = b?.dataset.upstream;
  if (!b || !name) return;
  try {
    if (b.classList.contains("edit-server")) {
      openEditor(await serverForm(name));
    } else if (b.classList.contains("remove-server")) {
      // Asked in the row: Remove becomes "Remove NAME? Yes / Cancel".
      const cell = b.parentElement!;
      const keep = [...cell.childNodes];
      const yes = el("button", { type: "button", className: "small revoke remove-yes", textContent: "Yes, remove" });
      const no = el("button", { type: "button", className: "small", textContent: "Cancel" });
      no.addEventListener("click", () => cell.replaceChildren(...keep));
      yes.addEventListener("click", async () => {
        yes.disabled = true;
        try {
          await removeServer(name);
        } catch (e) {
          cell.replaceChildren(...keep);
          showAlert(errorText(e));
        }
      });
      cell.replaceChildren(el("span", { textContent: `Remove ${name}? Its grants stay. ` }), yes, no);
    }
  } catch (e) {
    showAlert(errorText(e));
  }
});

// ---- import ----

function renderSources(sources: ImportSource[]) {
  sourcesBox.replaceChildren(
    ...sources.map((s) => {
      const box = el("div", { className: "import-source" });
      box.dataset.client = s.client;
      box.append(el("h3", { textContent: s.display_name }));
      box.append(el("p", { className: "muted small", textContent: s.file || "no configuration file location" }));
      if (s.error) {
        box.append(el("p", { className: "error small", textContent: s.error }));
      } else if (!s.found) {
        box.append(el("p", { className: "muted small", textContent: "Not found on this computer." }));
      } else if (s.servers.length === 0) {
        box.append(el("p", { className: "muted small", textContent: "It has no MCP servers." }));
      }
      for (const c of s.servers) {
        const label = el("label", { className: "pick" });
        const pick = el("input", { type: "checkbox", className: "import-pick", disabled: !c.importable });
        pick.dataset.key = c.key;
        label.append(pick, `${c.key} — ${c.what}`);
        box.append(label);
      }
      if (s.servers.some((c) => c.importable)) {
        const review = el("button", { type: "button", className: "small primary import-review", textContent: "Review import…" });
        review.addEventListener("click", async () => {
          const chosen = [...box.querySelectorAll<HTMLInputElement>("input.import-pick:checked")].map((i) => i.dataset.key!);
          say(importError, null);
          try {
            renderPlan(await importPreview(s.client, chosen));
            reviewing = { client: s.client, servers: chosen };
          } catch (e) {
            say(importError, errorText(e));
          }
        });
        box.append(el("p", {}), review);
      }
      return box;
    }),
  );
}

function renderPlan(plan: PlanView) {
  planList.replaceChildren(
    ...plan.servers.map((s) => {
      const box = el("div", { className: "plan-server" });
      box.dataset.name = s.name;
      box.append(el("p", { textContent: `${s.client_key} becomes the server ${s.name} (${s.what}).` }));
      for (const w of s.warnings) box.append(el("p", { className: "warning small", textContent: w }));
      for (const m of s.secrets) {
        const label = el("label", { className: "plan-secret small" });
        const move = el("input", { type: "checkbox", className: "import-secret" });
        move.dataset.secret = m.secret;
        label.append(move, `Move ${m.place} (a secret by ${m.because}) into the OS keychain as ${m.secret}`);
        box.append(label);
      }
      if (s.secrets.length) {
        box.append(el("p", { className: "muted small", textContent: "A value not ticked stays in config.toml as plain text." }));
      }
      return box;
    }),
    ...plan.skipped.map((k) => el("p", { className: "muted small", textContent: `${k.client_key}: ${k.reason}` })),
  );
  sourcesBox.hidden = true;
  planBox.hidden = false;
  importConfirm.textContent = `Import ${plan.servers.length} server${plan.servers.length === 1 ? "" : "s"} from ${plan.client}`;
}

async function openImport() {
  closeEditor();
  reviewing = null;
  say(importError, null);
  say(importDone, null);
  planBox.hidden = true;
  sourcesBox.hidden = false;
  importPanel.hidden = false;
  try {
    renderSources(await importSources());
  } catch (e) {
    say(importError, errorText(e));
  }
  importPanel.scrollIntoView();
}

importConfirm.addEventListener("click", async () => {
  if (!reviewing) return;
  importConfirm.disabled = true;
  say(importError, null);
  const confirmed = [...planList.querySelectorAll<HTMLInputElement>("input.import-secret:checked")].map((i) => i.dataset.secret!);
  try {
    const done = await importServers(reviewing.client, reviewing.servers, confirmed);
    planBox.hidden = true;
    reviewing = null;
    const moved = done.secrets.length ? ` ${done.secrets.length} key(s) moved into the OS keychain: ${done.secrets.join(", ")}.` : "";
    say(importDone,
      `Imported ${done.servers.join(", ")}.${moved} ${done.client_file} now goes through mcp-broker (backup: ${done.backup}). ${appliedText(done.applied)}`.trim());
  } catch (e) {
    say(importError, errorText(e));
  } finally {
    importConfirm.disabled = false;
  }
});
$("#import-back").addEventListener("click", () => {
  planBox.hidden = true;
  sourcesBox.hidden = false;
});
$("#import-close").addEventListener("click", () => {
  importPanel.hidden = true;
});
$("#import-open").addEventListener("click", openImport);
$("#first-import").addEventListener("click", openImport);

// ---- first start, and hand edits refused ----

async function refreshFirstStart() {
  try {
    const o = await listUpstreams();
    firstStart.hidden = o.upstreams.length !== 0;
  } catch {
    // grants.ts shows the error.
  }
}

$("#config-error-close").addEventListener("click", () => hideAlert());
configError.hidden = true;

await listen<ConfigRejected>("config-rejected", (ev) => {
  const { file, key, reason } = ev.payload;
  showAlert(`${file} was not applied: ${key ? `${key}: ` : ""}${reason}. The last good configuration stays in force.`);
});
await listen("upstreams-changed", refreshFirstStart);
await refreshFirstStart();
document.body.dataset.serversReady = "true";
