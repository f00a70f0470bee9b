-- Access tokens carry a check (a truncated HMAC under this key, see oauth::token_format), so
-- that the MCP endpoint refuses a made-up token without looking it up. The key is made here,
-- once per database, by SQLite's CSPRNG, so every process on the data dir (the server, the
-- CLI) mints and checks with the same one, and it lives and dies with the tokens it covers.
--
-- Tokens issued before this migration carry no check. They keep working until they expire:
-- the last expiry among them is recorded here, separately for OAuth access tokens (no
-- prefix) and personal ones (`mcpb_pat_` without a check); past it, their shapes are refused
-- without a lookup. NULL: there were none.
CREATE TABLE token_check (
    key                   BLOB NOT NULL CHECK (length(key) = 32),
    legacy_access_until   INTEGER,
    legacy_personal_until INTEGER
);
INSERT INTO token_check (key, legacy_access_until, legacy_personal_until)
SELECT randomblob(32),
    (SELECT MAX(t.expires_at) FROM tokens t JOIN grants g ON g.id = t.grant_id
        WHERE t.kind = 'access' AND g.kind = 'oauth' AND g.revoked_at IS NULL),
    (SELECT MAX(t.expires_at) FROM tokens t JOIN grants g ON g.id = t.grant_id
        WHERE t.kind = 'access' AND g.kind = 'personal_token' AND g.revoked_at IS NULL);
