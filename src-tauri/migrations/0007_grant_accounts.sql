-- The account of its upstream a grant uses (`[servers.NAME.accounts.ACCOUNT]`), chosen at
-- consent; NULL for an upstream without accounts (its one implicit account).
ALTER TABLE grants ADD COLUMN account TEXT;
