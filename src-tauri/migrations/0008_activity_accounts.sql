-- The upstream account a row's grant used when the row was written (issue 15): a grant
-- can switch accounts, so the account is recorded with each row rather than read from
-- the grant later. NULL for an upstream without accounts and for rows without a grant.
ALTER TABLE activity ADD COLUMN account TEXT;
