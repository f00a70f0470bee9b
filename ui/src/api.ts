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
  // The tools a personal token is meant for (null: all); not enforced yet.
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
}

/// What a failed command rejects with.
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
export const decideConsent = (approve: boolean, account: string | null = null) =>
  invoke<void>("decide_consent", { approve, account });
