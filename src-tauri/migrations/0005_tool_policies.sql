-- Per-tool consent (issue 14). A grant with a row here chose its tools at consent;
-- pinned = 0 means the upstream could not be listed then (all tools, nothing pinned).
-- A grant without a row predates per-tool consent and is treated like pinned = 0.
CREATE TABLE grant_tool_policies (
    grant_id   INTEGER PRIMARY KEY REFERENCES grants(id),
    pinned     INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

-- One tool of a grant: the person's choice, the pin (SHA-256 of the canonical
-- definition) and the definition approved, and, while the upstream serves something
-- else (status 'changed') or a tool that appeared after consent (status 'new'), what
-- it serves, for the diff.
CREATE TABLE grant_tools (
    grant_id          INTEGER NOT NULL REFERENCES grants(id),
    name              TEXT NOT NULL,
    choice            TEXT NOT NULL CHECK (choice IN ('allow', 'ask', 'block')),
    status            TEXT NOT NULL CHECK (status IN ('approved', 'changed', 'new')),
    pin               TEXT,
    definition        TEXT,
    served_pin        TEXT,
    served_definition TEXT,
    allowed_until     INTEGER,
    updated_at        INTEGER NOT NULL,
    PRIMARY KEY (grant_id, name)
) WITHOUT ROWID;
