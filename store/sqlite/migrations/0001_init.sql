-- Times are integer microseconds since the Unix epoch (UTC); lists of
-- strings are JSON arrays.
CREATE TABLE domains (
	name          TEXT PRIMARY KEY,
	state         TEXT NOT NULL,
	contact       TEXT NOT NULL DEFAULT '',
	mx_patterns   TEXT NOT NULL DEFAULT '[]',
	want_enforce  INTEGER NOT NULL DEFAULT 0,
	follow_mtasts INTEGER NOT NULL DEFAULT 0,
	token         TEXT NOT NULL DEFAULT '',
	created_at    INTEGER NOT NULL,
	updated_at    INTEGER NOT NULL,
	next_check    INTEGER NOT NULL,
	last_checked  INTEGER,
	checks_passed INTEGER NOT NULL DEFAULT 0,
	passing_since INTEGER,
	failing_since INTEGER,
	claimed_by    TEXT NOT NULL DEFAULT '',
	claimed_until INTEGER
);
CREATE INDEX domains_due ON domains (next_check, name) WHERE state <> 'removed';
CREATE INDEX domains_state ON domains (state);

CREATE TABLE checks (
	id       INTEGER PRIMARY KEY,
	domain   TEXT NOT NULL REFERENCES domains (name),
	at       INTEGER NOT NULL,
	eligible INTEGER NOT NULL,
	mx_hosts TEXT NOT NULL DEFAULT '[]',
	findings TEXT,
	worker   TEXT NOT NULL DEFAULT ''
);
CREATE INDEX checks_domain_at ON checks (domain, at);

CREATE TABLE decisions (
	id         INTEGER PRIMARY KEY,
	domain     TEXT NOT NULL REFERENCES domains (name),
	at         INTEGER NOT NULL,
	from_state TEXT NOT NULL,
	to_state   TEXT NOT NULL,
	reason     TEXT NOT NULL DEFAULT ''
);
CREATE INDEX decisions_domain ON decisions (domain, id);

CREATE TABLE lists (
	serial    INTEGER PRIMARY KEY,
	timestamp INTEGER NOT NULL,
	expires   INTEGER NOT NULL,
	sha256    TEXT NOT NULL DEFAULT '',
	entries   INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE serial (
	id    INTEGER PRIMARY KEY CHECK (id = 1),
	value INTEGER NOT NULL
);
INSERT INTO serial (id, value) VALUES (1, 0);

CREATE TABLE opt_out (
	domain TEXT PRIMARY KEY,
	reason TEXT NOT NULL DEFAULT '',
	at     INTEGER NOT NULL
);
