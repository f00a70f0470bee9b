// The shell's commands, typed. Mirrors src-tauri/desktop/commands.rs.
import { invoke } from "@tauri-apps/api/core";

export interface Grant {
  id: number;
  client_id: string;
  client_name: string;
  upstream: string;
  scope: string;
  created_at: number;
  last_used_at: number | null;
  sessions: number;
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
  sign_in: { signed_in: boolean | null; login: LoginState | null } | null;
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

export interface ConsentDetails {
  client_name: string;
  client_id: string;
  redirect_host: string;
  redirect_is_loopback: boolean;
  upstream: string;
  scope: string;
}

export const listGrants = () => invoke<Grant[]>("list_grants");
export const listUpstreams = () => invoke<Overview>("list_upstreams");
export const revokeGrant = (id: number) => invoke<boolean>("revoke_grant", { id });
export const setSecret = (name: string, value: string) =>
  invoke<void>("set_secret", { name, value });
export const deleteSecret = (name: string) => invoke<boolean>("delete_secret", { name });
export const signInUpstream = (name: string) => invoke<string>("sign_in_upstream", { name });
export const signOutUpstream = (name: string) => invoke<boolean>("sign_out_upstream", { name });
export const consentDetails = () => invoke<ConsentDetails>("consent_details");
export const decideConsent = (approve: boolean) => invoke<void>("decide_consent", { approve });
