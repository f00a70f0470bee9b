-- The activity log (issue 12): one row per MCP request through a grant, per
-- authorization event (registration, consent, tokens, replay, revocation), per rate-limited
-- request and per error the broker rendered with a reference id. Never a token, a secret
-- or (unless an upstream opts in, redacted) a tool argument. Bounded by age and by a row
-- cap (activity::Retention); oldest rows go first. No foreign keys: the log outlives what
-- it describes (a deleted registration's history stays readable).
CREATE TABLE activity (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    -- Unix time in milliseconds.
    at_ms          INTEGER NOT NULL,
    -- call | registered | consent_approved | consent_denied | tokens_issued |
    -- tokens_refreshed | replay | revoked | rate_limited | error
    event          TEXT NOT NULL,
    grant_id       INTEGER,
    client_id      TEXT,
    upstream       TEXT,
    -- The JSON-RPC method of a call; the endpoint of an error or a rate-limited request.
    method         TEXT,
    -- tools/call and prompts/get: params.name; resources/read: params.uri.
    target         TEXT,
    -- ok | error | tool_error | refused | upstream_failed | timeout | cancelled | rate_limited
    outcome        TEXT NOT NULL,
    error_code     INTEGER,
    duration_us    INTEGER,
    response_bytes INTEGER,
    -- The reference id shown to the person with an error.
    reference      TEXT,
    -- JSON: what a consent screen showed, who revoked, redacted arguments.
    detail         TEXT
);
CREATE INDEX activity_by_grant ON activity (grant_id, id);
CREATE INDEX activity_by_time ON activity (at_ms);
CREATE INDEX activity_by_reference ON activity (reference) WHERE reference IS NOT NULL;
