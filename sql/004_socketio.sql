-- 004_socketio.sql -- Socket.IO connection state recovery. Applied by
-- store_open, which moves user_version 3 -> 4.
--
-- Every stored message gets a global position (gpos): a number the hub hands
-- out in commit order over all rooms, so that one number - the offset a
-- socket.io-client keeps of the last event it received - says how far a
-- connection got in every one of its rooms.

-- NULL for messages stored before this migration (treated as 0).
ALTER TABLE messages ADD COLUMN gpos INTEGER;
-- The gpos of the room's newest message: the hub resumes its counter from
-- max(last_gpos) at start-up without reading the messages.
ALTER TABLE rooms ADD COLUMN last_gpos INTEGER NOT NULL DEFAULT 0;

-- Socket.IO sessions that may be recovered: a socket.io-client that lost
-- its connection comes back with its pid and the offset of the last event
-- it received, and gets the same socket id, its rooms and what it missed.
CREATE TABLE sio_sessions (
	pid TEXT PRIMARY KEY,             -- private session id (the client keeps it)
	sid TEXT NOT NULL,                -- the socket id, kept across recoveries
	user TEXT,                        -- the token's sub; NULL when anonymous
	rooms TEXT NOT NULL,              -- JSON {room: [seq joined at, epoch]}
	created_ms INTEGER NOT NULL,
	updated_ms INTEGER NOT NULL       -- last change or disconnection; recovery is
	                                  -- possible until updated_ms + socketio_recovery_window
) WITHOUT ROWID;
CREATE INDEX sio_sessions_updated ON sio_sessions (updated_ms);
