// The shell's commands, typed. Mirrors the Gateway's views (src-tauri/gateway/,
// src-tauri/consent.rs) as src-tauri/desktop/commands.rs returns them; the Rust test
// `the_window_types_match_what_the_core_serializes` (src-tauri/gateway/ui_shapes.rs)
// fails when a field differs.
import { invoke } from "@tauri-apps/api/core";

export interface Grant {
  id: number;
  client_id: string;
  client_name: string;
  upstream: string;
  resource: string;
  scope: string;
  created_at: number;
  last_used_at: number | null;
  kind: GrantKind;
  // A personal token's label (also its client_name).
  label: string | null;
  // When a personal token stops working; null: never (or an OAuth grant).
  expires_at: number | null;
  // The tools a personal token is meant for (null: all); the token's tool policy.
  tools: string[] | null;
  // The upstream account the grant uses (null: the upstream has no named accounts).
  account: string | null;
  sessions: number;
  // The upstream's accounts this grant can switch to (empty: fewer than two).
  upstream_accounts: string[];
}

export type GrantKind = "oauth" | "personal_token";

// A personal access token just created: `token` is shown once, never again.
export interface CreatedToken {
  grant_id: number;
  token: string;
  upstream: string;
  resource: string;
  label: string;
  expires_at: number | null;
}

export type SecretStatus = "stored" | "missing" | "unknown";

export interface SecretUse {
  name: string;
  place: string;
  // The account whose value reads it (null: the server's own, shared by every account).
  account: string | null;
  status: SecretStatus;
}

export type LoginState =
  | { state: "pending" }
  | { state: "done" }
  | { state: "failed"; detail: string };

export interface Upstream {
  name: string;
  endpoint: string;
  sessions: number;
  last_error: string | null;
  secrets: SecretUse[];
  sign_in: SignIn | null;
  // Per named account that signs in with OAuth (then `sign_in` is null).
  account_sign_ins: AccountSignIn[];
}

export type SignIn = { signed_in: boolean | null; login: LoginState | null };

export interface AccountSignIn {
  account: string;
  // What signInUpstream / signOutUpstream take for this account.
  sign_in_id: string;
  sign_in: SignIn;
}

export interface SecretEntry {
  name: string;
  status: SecretStatus;
  used_by: string[];
}

export interface Overview {
  issuer: string;
  upstreams: Upstream[];
  secrets: SecretEntry[];
  keychain_error: string | null;
}

export interface ConsentView {
  client_name: string;
  client_id: string;
  described_by: string | null;
  redirect_host: string;
  redirect_is_loopback: boolean;
  upstream: string;
  scope: string;
  ignored_scopes: string | null;
  access_warning: string;
  // The upstream's accounts when one must be chosen (empty: no choice to make).
  accounts: string[];
  // The account this client chose last time: named, never pre-selected.
  suggested_account: string | null;
  tools: ConsentTool[];
  tools_error: string | null;
}

export type ToolChoice = "allow" | "ask" | "block";
export type ToolStatus = "approved" | "changed" | "new";

/// One tool on a consent screen, with the proposed choice.
export interface ConsentTool {
  name: string;
  title: string | null;
  description: string | null;
  read_only: boolean;
  destructive: boolean;
  open_world: boolean;
  pin: string;
  canonical: string;
  choice: ToolChoice;
}

/// What an approval window ("Ask each time") shows.
export interface ToolApprovalView {
  grant_id: number;
  client_name: string;
  upstream: string;
  tool: string;
  arguments: string;
  timeout_secs: number;
}

export interface DiffLine {
  op: "same" | "removed" | "added";
  text: string;
}

/// One tool of a grant in the grants window.
export interface ToolView {
  name: string;
  choice: ToolChoice;
  status: ToolStatus;
  definition: string | null;
  served_definition: string | null;
  allowed_until: number | null;
  diff: DiffLine[];
}

export interface GrantToolsView {
  grant_id: number;
  client_name: string;
  upstream: string;
  pinned: boolean;
  tools: ToolView[];
}

/// What a failed command rejects with.
// One row of the activity log (src-tauri/store/activity.rs): an MCP call, or an
// authorization event (registered, consent_approved/denied, tokens_issued/refreshed,
// replay, revoked, rate_limited, error).
export interface ActivityRow {
  id: number;
  // Unix milliseconds.
  at_ms: number;
  event: string;
  grant_id: number | null;
  client_id: string | null;
  upstream: string | null;
  // The upstream account the grant used (null: the upstream has no named accounts).
  account: string | null;
  method: string | null;
  // The tool / prompt name or resource URI.
  target: string | null;
  // ok | error | tool_error | refused | upstream_failed | timeout | cancelled | rate_limited
  outcome: string;
  error_code: number | null;
  duration_us: number | null;
  response_bytes: number | null;
  reference: string | null;
  // JSON: what a consent screen showed, who revoked, redacted arguments.
  detail: string | null;
}

export interface TargetCount {
  name: string;
  calls: number;
  errors: number;
}

// One grant's detail view (src-tauri/gateway/activity.rs).
export interface GrantActivity {
  grant_id: number;
  calls: ActivityRow[];
  // Pass as `before` for the next (older) page; null: no more.
  next_before: number | null;
  counts: TargetCount[];
  errors: ActivityRow[];
  last_used_ms: number | null;
  history: ActivityRow[];
}

export interface ActivityFilter {
  tool?: string;
  outcome?: string;
  before?: number;
}

export interface CommandError {
  code: string;
  message: string;
}

/// The one line to show for a failed command (or any other thrown value).
export function errorText(e: unknown): string {
  if (typeof e === "object" && e !== null && "message" in e) {
    return String((e as CommandError).message);
  }
  return String(e);
}

export const listGrants = () => invoke<Grant[]>("list_grants");
export const grantActivity = (id: number, filter: ActivityFilter) =>
  invoke<GrantActivity>("grant_activity", { id, filter });
export const listUpstreams = () => invoke<Overview>("list_upstreams");
export const revokeGrant = (id: number) => invoke<void>("revoke_grant", { id });
export const switchAccount = (id: number, account: string) =>
  invoke<void>("switch_account", { id, account });
// Revokes every active grant; resolves to how many were revoked.
export const revokeAllGrants = () => invoke<number>("revoke_all_grants");
// `expires`: a duration such as "30d", or "never".
export const createPersonalToken = (upstream: string, label: string, expires: string) =>
  invoke<CreatedToken>("create_personal_token", { upstream, label, expires });
export const setSecret = (name: string, value: string) =>
  invoke<void>("set_secret", { name, value });
export const deleteSecret = (name: string) => invoke<boolean>("delete_secret", { name });
export const signInUpstream = (name: string) => invoke<string>("sign_in_upstream", { name });
export const signOutUpstream = (name: string) => invoke<boolean>("sign_out_upstream", { name });
export interface About {
  version: string;
  data_dir: string;
  config_file: string;
  start_at_login: boolean | null;
  start_at_login_error: string | null;
  offer_start_at_login: boolean;
}

export const about = () => invoke<About>("about");
export const setStartAtLogin = (on: boolean) => invoke<About>("set_start_at_login", { on });
export const dismissStartAtLoginOffer = () => invoke<About>("dismiss_start_at_login_offer");
export const consentDetails = () => invoke<ConsentView>("consent_details");
export const decideConsent = (
  approve: boolean,
  tools: Record<string, ToolChoice> = {},
  account: string | null = null,
) => invoke<void>("decide_consent", { approve, tools, account });
export const toolApprovalDetails = () => invoke<ToolApprovalView>("tool_approval_details");
export const answerToolApproval = (answer: "once" | "hour" | "always" | "deny") =>
  invoke<void>("answer_tool_approval", { answer });
export const grantTools = (grantId: number) => invoke<GrantToolsView>("grant_tools", { grantId });
export const setToolChoice = (grantId: number, tool: string, choice: ToolChoice) =>
  invoke<void>("set_tool_choice", { grantId, tool, choice });

// ---- servers: added, edited, removed and imported in the window (gateway/servers.rs) ----

export type FormTransport = "stdio" | "remote";
export type ValueKind = "literal" | "env" | "secret";

// One environment variable (stdio) or header (remote) of the server form.
export interface FormValue {
  key: string;
  kind: ValueKind;
  // literal: the text; env: the variable to read; secret: what was typed into the
  // password field ("" keeps the stored value). Never filled in by the broker for a secret.
  value: string;
  // secret: the keychain entry ("" for a new one: the broker names it).
  secret: string;
  // secret: what goes before the value, e.g. "Bearer ".
  prefix: string;
}

export interface ServerForm {
  name: string;
  transport: FormTransport;
  command: string;
  args: string[];
  cwd: string;
  url: string;
  client_id: string;
  values: FormValue[];
}

// What a change did to the configuration in force.
export interface Applied {
  added: string[];
  changed: string[];
  removed: string[];
  restart_needed: boolean;
  warning: string | null;
}

export interface ImportCandidate {
  key: string;
  what: string;
  importable: boolean;
}

export interface ImportSource {
  client: string;
  display_name: string;
  file: string;
  found: boolean;
  error: string | null;
  servers: ImportCandidate[];
}

export interface PlanSecret {
  secret: string;
  place: string;
  because: string;
}

export interface PlanServer {
  client_key: string;
  name: string;
  what: string;
  secrets: PlanSecret[];
  warnings: string[];
}

export interface PlanSkipped {
  client_key: string;
  reason: string;
}

export interface PlanView {
  client: string;
  servers: PlanServer[];
  skipped: PlanSkipped[];
}

export interface ImportedView {
  servers: string[];
  secrets: string[];
  client_file: string;
  backup: string;
  applied: Applied;
}

// A hand edit of config.toml that was refused (the `config-rejected` event).
export interface ConfigRejected {
  file: string;
  key: string;
  reason: string;
}

export const serverForm = (name: string) => invoke<ServerForm>("server_form", { name });
export const addServer = (form: ServerForm) => invoke<Applied>("add_server", { form });
export const updateServer = (form: ServerForm) => invoke<Applied>("update_server", { form });
export const removeServer = (name: string) => invoke<Applied>("remove_server", { name });
export const importSources = () => invoke<ImportSource[]>("import_sources");
export const importPreview = (client: string, servers: string[]) =>
  invoke<PlanView>("import_preview", { client, servers });
// `confirmed`: the keychain entries (from the preview) the person agreed to move.
export const importServers = (client: string, servers: string[], confirmed: string[]) =>
  invoke<ImportedView>("import_servers", { client, servers, confirmed });

// How a grant is named everywhere: "Claude Code → github (work)".
export const grantTitle = (g: Grant) =>
  `${g.client_name} → ${g.upstream}${g.account === null ? "" : ` (${g.account})`}`;
