-- Clients registered through RFC 7591. Only a hash of a client secret is kept.
CREATE TABLE clients (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    auth_method   TEXT NOT NULL,
    secret_hash   BLOB,
    redirect_uris TEXT NOT NULL, -- JSON array
    metadata      TEXT NOT NULL, -- JSON object, as echoed at registration
    created_at    INTEGER NOT NULL
);

-- A grant: one client's consented access to one upstream (an RFC 8707 resource).
CREATE TABLE grants (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    client_id    TEXT NOT NULL REFERENCES clients(id),
    upstream     TEXT NOT NULL,
    resource     TEXT NOT NULL,
    scope        TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at   INTEGER
);
CREATE INDEX grants_active ON grants(client_id, resource) WHERE revoked_at IS NULL;

-- Authorization codes, by SHA-256. Kept after use (used_at) so a replay is recognised.
CREATE TABLE codes (
    hash           BLOB PRIMARY KEY,
    grant_id       INTEGER NOT NULL REFERENCES grants(id),
    client_id      TEXT NOT NULL,
    redirect_uri   TEXT NOT NULL,
    code_challenge TEXT NOT NULL,
    resource       TEXT NOT NULL,
    scope          TEXT NOT NULL,
    expires_at     INTEGER NOT NULL,
    used_at        INTEGER
);

-- Access and refresh tokens, by SHA-256. A rotated-out refresh token keeps its row
-- (rotated_at) until it expires, so a replay is recognised.
CREATE TABLE tokens (
    hash       BLOB PRIMARY KEY,
    kind       TEXT NOT NULL CHECK (kind IN ('access', 'refresh')),
    grant_id   INTEGER NOT NULL REFERENCES grants(id),
    scope      TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    rotated_at INTEGER
) WITHOUT ROWID;
CREATE INDEX tokens_grant ON tokens(grant_id);
