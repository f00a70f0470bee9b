-- Personal access tokens are grants of their own kind: minted by the person (CLI or
-- window) instead of approved through /authorize. They belong to one reserved client row
-- (see oauth::personal), carry a label, may expire (NULL: never), and may name the tools
-- they are meant for (a JSON array; stored for the per-tool policy, not yet enforced).
ALTER TABLE grants ADD COLUMN kind TEXT NOT NULL DEFAULT 'oauth'
    CHECK (kind IN ('oauth', 'personal_token'));
ALTER TABLE grants ADD COLUMN label TEXT;
ALTER TABLE grants ADD COLUMN expires_at INTEGER;
ALTER TABLE grants ADD COLUMN tools TEXT;

-- When a token was issued (RFC 7662 `iat`); NULL for tokens issued before this column.
ALTER TABLE tokens ADD COLUMN issued_at INTEGER;

-- A deleted registration keeps its row while grants (revoked) still name it, so that its
-- client_id answers invalid_client instead of ever being valid again.
ALTER TABLE clients ADD COLUMN deleted_at INTEGER;
