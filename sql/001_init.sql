-- 001_init.sql -- the first schema: rooms, their stored messages, idempotency
-- keys and notifications. Applied by store_open, which moves user_version 0 -> 1.
--
-- Timestamps are RFC 3339 UTC text with milliseconds ("2026-11-23T10:00:00.000Z"),
-- so they sort as text and a prefix such as '2026-11-23T10:00' compares as expected.

-- One row per room, created the first time the hub needs it (a publish, a
-- subscription, a notification).
CREATE TABLE rooms (
	id INTEGER PRIMARY KEY,           -- internal key used by messages and idempotency
	name TEXT UNIQUE NOT NULL,        -- the room name clients use ("race:42", "user:alice", "global")
	epoch TEXT NOT NULL,              -- 16 random hex digits, fixed for the life of the room's history;
	                                  -- clients resume with {seq, epoch} and a different epoch means "start over"
	last_seq INTEGER NOT NULL DEFAULT 0, -- seq of the newest message ever stored (0: none); never goes back,
	                                  -- even when pruning removes the messages themselves
	created_at TEXT NOT NULL          -- when the room was created
);

-- Retained history: what a reconnecting client replays. The hub prunes it to
-- each namespace's history_size and history_ttl.
CREATE TABLE messages (
	room_id INTEGER NOT NULL REFERENCES rooms (id),
	seq INTEGER NOT NULL,             -- 1, 2, 3 ... per room, in publish order
	event TEXT NOT NULL,              -- event name given by the publisher ("odds", "notification")
	data TEXT NOT NULL,               -- the publisher's JSON, byte for byte
	ts TEXT NOT NULL,                 -- when the hub committed it (RFC 3339 UTC, milliseconds)
	PRIMARY KEY (room_id, seq)
) WITHOUT ROWID;
-- No index on ts: every stored message would pay for it on the hub's hot write
-- path, and it is not needed. ts grows with seq, so pruning by age looks only at
-- a room's oldest rows (the front of the primary key), and an operator's query
-- by time reads one room's retained rows, which retention keeps bounded.

-- Idempotency keys of publishes: a publish repeating a key seen in the same room
-- in the last 24 hours gets the original seq back and is not stored again.
CREATE TABLE idempotency (
	room_id INTEGER NOT NULL REFERENCES rooms (id),
	key TEXT NOT NULL,                -- the publisher's idempotency_key
	seq INTEGER NOT NULL,             -- seq the first publish with this key was given
	created_ms INTEGER NOT NULL,      -- when it was stored, milliseconds since 1970 (UTC)
	PRIMARY KEY (room_id, key)
) WITHOUT ROWID;
-- Keys past the 24 h window are deleted oldest first, in small steps.
CREATE INDEX idempotency_created ON idempotency (created_ms);

-- Stored notifications, one row per recipient. Each was also delivered as an
-- event "notification" in the room user:{user}, with the seq kept here.
CREATE TABLE notifications (
	id INTEGER PRIMARY KEY,           -- grows with time: newest first is ORDER BY id DESC
	user TEXT NOT NULL,               -- recipient (the JWT sub)
	type TEXT NOT NULL,               -- application-defined kind ("order.shipped")
	title TEXT,                       -- short headline, may be NULL
	message TEXT,                     -- body text, may be NULL
	data TEXT,                        -- JSON given by the sender, may be NULL
	action_url TEXT,                  -- link the client may open, may be NULL
	read_at TEXT,                     -- when it was marked read; NULL while unread
	created_at TEXT NOT NULL,         -- when it was stored
	seq INTEGER                       -- seq of the event in user:{user} that carried it
);
-- A user's notifications, newest first, paged with id < before.
CREATE INDEX notifications_user ON notifications (user, id);
-- Only unread rows: the unread count and the unread list stay cheap however
-- many read notifications a user has accumulated.
CREATE INDEX notifications_unread ON notifications (user, id) WHERE read_at IS NULL;
