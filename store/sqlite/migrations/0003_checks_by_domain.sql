-- A domain's checks are read together (its status page and API read its
-- latest 100), but in a rowid table each lies on the page of the moment it
-- was written, among every other domain's checks of that round: a status
-- read loaded one table page per check. Keyed by (domain, at, id) WITHOUT
-- ROWID, a domain's checks lie together in key order and are read in one
-- descent, newest first (https://sqlite.org/withoutrowid.html). The id is
-- kept, unique, and given by the writer (one more than the largest).
-- findings, the one long column, comes last, so that reading the others
-- never follows its overflow pages.
CREATE TABLE checks_by_domain (
	domain   TEXT NOT NULL REFERENCES domains (name),
	at       INTEGER NOT NULL,
	id       INTEGER NOT NULL,
	eligible INTEGER NOT NULL,
	mx_hosts TEXT NOT NULL DEFAULT '[]',
	worker   TEXT NOT NULL DEFAULT '',
	findings TEXT,
	PRIMARY KEY (domain, at, id)
) WITHOUT ROWID;
INSERT INTO checks_by_domain (domain, at, id, eligible, mx_hosts, worker, findings)
	SELECT domain, at, id, eligible, mx_hosts, worker, findings FROM checks;
DROP TABLE checks;
ALTER TABLE checks_by_domain RENAME TO checks;
CREATE UNIQUE INDEX checks_id ON checks (id);
-- Pruning deletes by age.
CREATE INDEX checks_at ON checks (at);
