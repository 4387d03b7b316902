-- The gateway's letters, their feed of events, the webhook deliveries
-- of each event and the audit of API calls. Times are timestamptz (UTC
-- on the way out); a zero time of the store is NULL here. Ids and
-- cursors compare byte by byte (COLLATE "C") whatever the database's
-- collation: a locale's rules would sort the dashes of a UUID apart.

CREATE TABLE letters (
	id              text COLLATE "C" PRIMARY KEY,           -- UUIDv7: sorts in creation order
	client          text NOT NULL,
	idempotency_key text NOT NULL DEFAULT '',
	request_sha256  text NOT NULL DEFAULT '',
	terminal        text NOT NULL,
	signer_cert     text NOT NULL DEFAULT '',
	signer_nip      text NOT NULL DEFAULT '',
	title           text NOT NULL DEFAULT '',
	number          text NOT NULL DEFAULT '',
	state           text NOT NULL,
	reason          text NOT NULL DEFAULT '',
	detail          text NOT NULL DEFAULT '',
	cancel_asked    boolean NOT NULL DEFAULT false,
	created_at      timestamptz NOT NULL,
	updated_at      timestamptz NOT NULL,
	expires_at      timestamptz,
	seq             bigint NOT NULL DEFAULT 0,
	receipts        jsonb,
	envelope        bytea,
	result          bytea,
	lease_until     timestamptz
);

-- An idempotency key is unique per client; the empty key is no key.
CREATE UNIQUE INDEX letters_idem ON letters (client, idempotency_key) WHERE idempotency_key <> '';
CREATE INDEX letters_client ON letters (client, id);
CREATE INDEX letters_state ON letters (state, id);
-- What a terminal's Sync may lack: its letters sent or stored.
CREATE INDEX letters_unfinished ON letters (terminal, id) WHERE state IN ('sent', 'stored');

-- event_seq is the feed's one counter. Every transaction that appends an
-- event updates its row, so appends hold its lock until they commit:
-- events commit, and so become visible, in the order of their Seq.
CREATE TABLE event_seq (
	id   integer PRIMARY KEY CHECK (id = 1),
	last bigint NOT NULL
);
INSERT INTO event_seq (id, last) VALUES (1, 0);

CREATE TABLE events (
	seq       bigint PRIMARY KEY,
	client    text NOT NULL,
	letter_id text COLLATE "C" NOT NULL REFERENCES letters (id),
	state     text NOT NULL,
	reason    text NOT NULL DEFAULT '',
	detail    text NOT NULL DEFAULT '',
	at        timestamptz NOT NULL
);
CREATE INDEX events_client ON events (client, seq);

CREATE TABLE deliveries (
	id          bigserial PRIMARY KEY,
	client      text NOT NULL,
	endpoint    text NOT NULL,
	event_seq   bigint NOT NULL REFERENCES events (seq),
	letter_id   text COLLATE "C" NOT NULL REFERENCES letters (id),
	attempts    integer NOT NULL DEFAULT 0,
	next_at     timestamptz NOT NULL,
	lease_until timestamptz,
	done        boolean NOT NULL DEFAULT false,
	done_at     timestamptz,
	last_status integer NOT NULL DEFAULT 0,
	last_error  text NOT NULL DEFAULT ''
);
-- Deliveries not done, claimed oldest first.
CREATE INDEX deliveries_due ON deliveries (id) WHERE NOT done;
CREATE INDEX deliveries_letter ON deliveries (letter_id, id);

CREATE TABLE audit (
	id        bigserial PRIMARY KEY,
	at        timestamptz NOT NULL,
	client    text NOT NULL DEFAULT '',
	method    text NOT NULL DEFAULT '',
	path      text NOT NULL DEFAULT '',
	status    integer NOT NULL DEFAULT 0,
	letter_id text NOT NULL DEFAULT '',
	remote    text NOT NULL DEFAULT ''
);
