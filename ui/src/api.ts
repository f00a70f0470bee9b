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

export interface Upstream {
  name: string;
  endpoint: string;
  sessions: number;
  last_error: string | null;
}

export interface Overview {
  issuer: string;
  upstreams: Upstream[];
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
export const consentDetails = () => invoke<ConsentDetails>("consent_details");
export const decideConsent = (approve: boolean) => invoke<void>("decide_consent", { approve });
