-- 002_webhooks.sql -- webhook endpoints and the delivery outbox. Applied by
-- store_open, which moves user_version 1 -> 2.
--
-- A delivery row is written by the hub in the same transaction as the message
-- that caused it, so no event is stored without its deliveries. The courier
-- reads due rows through its own read-only handle and reports each attempt to
-- the hub, which alone updates them.

CREATE TABLE webhook_endpoints (
	id TEXT PRIMARY KEY,              -- "wh_" + 16 hex digits
	url TEXT NOT NULL,                -- http:// or https://
	secret TEXT NOT NULL,             -- "whsec_" + base64; signs every attempt
	old_secret TEXT,                  -- the secret before the last rotation...
	old_secret_until_ms INTEGER,      -- ...which also signs until then (ms since 1970)
	events TEXT NOT NULL,             -- JSON array of event globs ("workflow.*", "*")
	rooms TEXT,                       -- JSON array of room globs; NULL: every room
	max_attempts INTEGER NOT NULL,    -- attempts before a delivery is dead (the first counts)
	timeout_ms INTEGER NOT NULL,      -- per attempt
	enabled INTEGER NOT NULL,         -- 0: nothing is queued for it nor sent to it
	disabled_reason TEXT,             -- why it was disabled: "gone" (the receiver answered 410) or "api"
	failures INTEGER NOT NULL DEFAULT 0, -- consecutive failed attempts (circuit breaker)
	paused_until_ms INTEGER,          -- breaker open: no attempt before then, then one probe
	created_at TEXT NOT NULL
);

CREATE TABLE webhook_deliveries (
	-- AUTOINCREMENT: an id is never handed out twice, even after deletes,
	-- since receivers deduplicate on the webhook-id "msg_<id>".
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	endpoint_id TEXT NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
	event TEXT NOT NULL,              -- the message's event ("order.created", "webhook.test")
	room TEXT,                        -- the message's room and seq; NULL for webhook.test
	seq INTEGER,
	body TEXT NOT NULL,               -- the JSON body, fixed at commit: every attempt sends these bytes
	status TEXT NOT NULL,             -- pending | failed (will retry) | succeeded | dead
	attempts INTEGER NOT NULL DEFAULT 0,
	next_attempt_ms INTEGER,          -- when it is due (ms since 1970); NULL once succeeded or dead
	last_status INTEGER,              -- HTTP status of the last attempt; NULL when none came back
	last_error TEXT,                  -- why the last attempt failed
	created_at TEXT NOT NULL,
	updated_at TEXT NOT NULL
);
-- What the courier asks for: an endpoint's due rows, oldest due first. Only
-- rows still to be sent are indexed, so succeeded and dead ones cost nothing.
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (endpoint_id, next_attempt_ms)
	WHERE status IN ('pending', 'failed');
-- An endpoint's deliveries, newest first (GET /api/webhooks/{id}/deliveries).
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, id);
-- Dead deliveries, which an operator looks for and /api/stats counts.
CREATE INDEX webhook_deliveries_dead ON webhook_deliveries (endpoint_id) WHERE status = 'dead';
