-- Ownership proofs replace the plaintext token column: a proof keeps only
-- the SHA-256 of its mailed token. Tokens of the old column were never
-- mailed nor used by any door; they are dropped, not carried over.
ALTER TABLE domains ADD COLUMN source TEXT NOT NULL DEFAULT '';
ALTER TABLE domains DROP COLUMN token;

CREATE TABLE proofs (
	id            INTEGER PRIMARY KEY,
	domain        TEXT NOT NULL REFERENCES domains (name),
	purpose       TEXT NOT NULL,
	token_hash    TEXT NOT NULL UNIQUE,
	dns_value     TEXT NOT NULL,
	source        TEXT NOT NULL DEFAULT '',
	created_at    INTEGER NOT NULL,
	expires_at    INTEGER NOT NULL,
	used_at       INTEGER,
	used_by       TEXT NOT NULL DEFAULT '',
	superseded_at INTEGER
);
CREATE INDEX proofs_domain ON proofs (domain, purpose, id);
CREATE INDEX proofs_open ON proofs (id) WHERE used_at IS NULL AND superseded_at IS NULL;
