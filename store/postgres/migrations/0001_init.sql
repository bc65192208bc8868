-- Lists of strings are JSON arrays in text columns; findings are kept
-- verbatim as the checker wrote them.
CREATE TABLE domains (
	name          TEXT PRIMARY KEY,
	state         TEXT NOT NULL,
	contact       TEXT NOT NULL DEFAULT '',
	mx_patterns   TEXT NOT NULL DEFAULT '[]',
	want_enforce  BOOLEAN NOT NULL DEFAULT FALSE,
	follow_mtasts BOOLEAN NOT NULL DEFAULT FALSE,
	token         TEXT NOT NULL DEFAULT '',
	created_at    TIMESTAMPTZ NOT NULL,
	updated_at    TIMESTAMPTZ NOT NULL,
	next_check    TIMESTAMPTZ NOT NULL,
	last_checked  TIMESTAMPTZ,
	checks_passed INTEGER NOT NULL DEFAULT 0,
	passing_since TIMESTAMPTZ,
	failing_since TIMESTAMPTZ,
	claimed_by    TEXT NOT NULL DEFAULT '',
	claimed_until TIMESTAMPTZ
);
CREATE INDEX domains_due ON domains (next_check, name) WHERE state <> 'removed';
CREATE INDEX domains_state ON domains (state);

CREATE TABLE checks (
	id       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	domain   TEXT NOT NULL REFERENCES domains (name),
	at       TIMESTAMPTZ NOT NULL,
	eligible BOOLEAN NOT NULL,
	mx_hosts TEXT NOT NULL DEFAULT '[]',
	findings TEXT,
	worker   TEXT NOT NULL DEFAULT ''
);
CREATE INDEX checks_domain_at ON checks (domain, at);

CREATE TABLE decisions (
	id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	domain     TEXT NOT NULL REFERENCES domains (name),
	at         TIMESTAMPTZ NOT NULL,
	from_state TEXT NOT NULL,
	to_state   TEXT NOT NULL,
	reason     TEXT NOT NULL DEFAULT ''
);
CREATE INDEX decisions_domain ON decisions (domain, id);

CREATE TABLE lists (
	serial    BIGINT PRIMARY KEY,
	timestamp TIMESTAMPTZ NOT NULL,
	expires   TIMESTAMPTZ NOT NULL,
	sha256    TEXT NOT NULL DEFAULT '',
	entries   INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE serial (
	id    INTEGER PRIMARY KEY CHECK (id = 1),
	value BIGINT NOT NULL
);
INSERT INTO serial (id, value) VALUES (1, 0);

CREATE TABLE opt_out (
	domain TEXT PRIMARY KEY,
	reason TEXT NOT NULL DEFAULT '',
	at     TIMESTAMPTZ NOT NULL
);
