-- Names of the secrets the user stored in the OS keychain through `mcp-broker secrets set`.
-- Names only, never values: the keychain cannot be listed portably, so `secrets list`
-- reads this index (plus the names the configuration refers to).
CREATE TABLE secrets (
    name       TEXT PRIMARY KEY,
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;
