/* store.c -- the SQLite database: opening and migrating it, and the prepared
 * statements the hub writes through and the workers read history with. */

#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>

#include "util.h"

#define STORE_BUSY_MS 5000
/* After a checkpoint the WAL file is cut back to this size, so one large
 * transaction does not leave a large file behind for good. */
#define STORE_WAL_LIMIT (64 * 1024 * 1024)

/* Which handles prepare a statement: a read-only handle cannot run writes,
 * and preparing them there would only hide the mistake until run time. */
enum store_mode { STORE_ANY, STORE_RW, STORE_RO };

/* A workflow instance with its definition's steps (wfstate_json's row). */
#define STORE_WF_SELECT \
	"SELECT w.id, w.definition, w.status, w.step, w.data, w.version, w.created_by," \
	" w.created_at, w.updated_at, d.steps FROM workflows AS w" \
	" JOIN workflow_definitions AS d ON d.name = w.definition"

enum {
	ST_BEGIN,
	ST_BEGIN_READ,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_ROOM_GET,
	ST_ROOM_ADD,
	ST_ROOM_SET_SEQ,
	ST_ROOMS_EACH,
	ST_ROOMS_AFTER,
	ST_MSG_ADD,
	ST_IDEM_ADD,
	ST_IDEM_FIND,
	ST_HISTORY,
	ST_FIRST_SEQ,
	ST_PRUNE_SCAN,
	ST_PRUNE_MSGS,
	ST_PRUNE_IDEM,
	ST_NOTIF_ADD,
	ST_NOTIF_LIST,
	ST_NOTIF_LIST_UNREAD,
	ST_NOTIF_READ,
	ST_NOTIF_READ_ALL,
	ST_UNREAD_COUNT,
	ST_SAVEPOINT,
	ST_RELEASE,
	ST_ROLLBACK_TO,
	ST_WEBHOOK_PUT,
	ST_WEBHOOK_DELETE,
	ST_WEBHOOKS,
	ST_DELIVERY_ADD,
	ST_DELIVERY_GET,
	ST_DELIVERY_UPDATE,
	ST_DELIVERIES,
	ST_DELIVERIES_STATUS,
	ST_DELIVERIES_DUE,
	ST_DELIVERY_NEXT_DUE,
	ST_DELIVERY_COUNTS,
	ST_WF_DEF_ADD,
	ST_WF_DEF_GET,
	ST_WF_DEFS,
	ST_WF_ADD,
	ST_WF_GET,
	ST_WF_UPDATE,
	ST_WF_LIST,
	ST_WF_COUNTS,
	ST_WF_HISTORY_ADD,
	ST_WF_HISTORY,
	ST_WF_APPROVAL_ADD,
	ST_WF_APPROVALS,
	ST_MAX_GPOS,
	ST_SIO_PUT,
	ST_SIO_GET,
	ST_SIO_TOUCH,
	ST_SIO_PRUNE,
	ST_COUNT
};

static const struct {
	enum store_mode mode;
	const char *sql;
} store_sql[ST_COUNT] = {
	/* IMMEDIATE takes the write lock up front: a deferred transaction that
	 * reads first could fail with SQLITE_BUSY_SNAPSHOT when it starts writing. */
	[ST_BEGIN] = { STORE_RW, "BEGIN IMMEDIATE" },
	/* Readers only want one consistent snapshot over several queries. */
	[ST_BEGIN_READ] = { STORE_RO, "BEGIN" },
	[ST_COMMIT] = { STORE_ANY, "COMMIT" },
	[ST_ROLLBACK] = { STORE_ANY, "ROLLBACK" },
	[ST_ROOM_GET] = { STORE_ANY,
		"SELECT id, epoch, last_seq FROM rooms WHERE name = ?1" },
	[ST_ROOM_ADD] = { STORE_RW,
		"INSERT INTO rooms (name, epoch, last_seq, created_at) VALUES (?1, ?2, 0, ?3)" },
	[ST_ROOM_SET_SEQ] = { STORE_RW,
		"UPDATE rooms SET last_seq = ?2, last_gpos = max(last_gpos, ?3) WHERE id = ?1" },
	[ST_ROOMS_EACH] = { STORE_ANY,
		"SELECT id, name, last_seq FROM rooms ORDER BY name" },
	[ST_ROOMS_AFTER] = { STORE_ANY,
		"SELECT id, name, last_seq FROM rooms WHERE id > ?1 ORDER BY id LIMIT ?2" },
	[ST_MSG_ADD] = { STORE_RW,
		"INSERT INTO messages (room_id, seq, event, data, ts, gpos)"
		" VALUES (?1, ?2, ?3, ?4, ?5, ?6)" },
	/* A key older than the window may still be there, not yet pruned: it is
	 * replaced, since store_idem_find no longer honours it. */
	[ST_IDEM_ADD] = { STORE_RW,
		"INSERT INTO idempotency (room_id, key, seq, created_ms) VALUES (?1, ?2, ?3, ?4)"
		" ON CONFLICT (room_id, key) DO UPDATE SET seq = excluded.seq,"
		" created_ms = excluded.created_ms" },
	[ST_IDEM_FIND] = { STORE_ANY,
		"SELECT seq FROM idempotency WHERE room_id = ?1 AND key = ?2 AND created_ms >= ?3" },
	[ST_HISTORY] = { STORE_ANY,
		"SELECT seq, event, data, ts, coalesce(gpos, 0) FROM messages"
		" WHERE room_id = (SELECT id FROM rooms WHERE name = ?1) AND seq > ?2"
		" ORDER BY seq LIMIT ?3" },
	[ST_FIRST_SEQ] = { STORE_ANY,
		"SELECT seq FROM messages WHERE room_id = (SELECT id FROM rooms WHERE name = ?1)"
		" ORDER BY seq LIMIT 1" },
	/* See store_prune_room and store_prune_idem. */
	[ST_PRUNE_SCAN] = { STORE_RW,
		"SELECT seq, ts FROM messages WHERE room_id = ?1 ORDER BY seq LIMIT ?2" },
	[ST_PRUNE_MSGS] = { STORE_RW,
		"DELETE FROM messages WHERE room_id = ?1 AND seq <= ?2" },
	/* Keys of every room: the window is the same for all, and a room the hub
	 * no longer visits must not keep its keys for ever. (key, room_id) in this
	 * order: written (room_id, key), SQLite 3.40 looks rows up by room_id
	 * alone and reads every key of the room. */
	[ST_PRUNE_IDEM] = { STORE_RW,
		"DELETE FROM idempotency WHERE (key, room_id) IN"
		" (SELECT key, room_id FROM idempotency WHERE created_ms < ?1"
		" ORDER BY created_ms LIMIT ?2)" },
	[ST_NOTIF_ADD] = { STORE_RW,
		"INSERT INTO notifications (user, type, title, message, data, action_url,"
		" created_at, seq) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)" },
	/* Two statements rather than one with "(?unread = 0 OR read_at IS NULL)":
	 * the partial index is only chosen when read_at IS NULL is in the text. */
	[ST_NOTIF_LIST] = { STORE_ANY,
		"SELECT id, user, type, title, message, data, action_url, read_at, created_at, seq"
		" FROM notifications WHERE user = ?1 AND id < ?2 ORDER BY id DESC LIMIT ?3" },
	[ST_NOTIF_LIST_UNREAD] = { STORE_ANY,
		"SELECT id, user, type, title, message, data, action_url, read_at, created_at, seq"
		" FROM notifications WHERE user = ?1 AND read_at IS NULL AND id < ?2"
		" ORDER BY id DESC LIMIT ?3" },
	[ST_NOTIF_READ] = { STORE_RW,
		"UPDATE notifications SET read_at = ?3"
		" WHERE id = ?2 AND user = ?1 AND read_at IS NULL" },
	[ST_NOTIF_READ_ALL] = { STORE_RW,
		"UPDATE notifications SET read_at = ?2 WHERE user = ?1 AND read_at IS NULL" },
	[ST_UNREAD_COUNT] = { STORE_ANY,
		"SELECT count(*) FROM notifications WHERE user = ?1 AND read_at IS NULL" },
	/* A savepoint nests inside the caller's transaction and is a transaction
	 * of its own outside one: marking many ids read is atomic either way. */
	[ST_SAVEPOINT] = { STORE_RW, "SAVEPOINT store_read" },
	[ST_RELEASE] = { STORE_RW, "RELEASE store_read" },
	[ST_ROLLBACK_TO] = { STORE_RW, "ROLLBACK TO store_read" },
	/* An update in place, not INSERT OR REPLACE: replacing deletes the row,
	 * and the deletion would cascade to the endpoint's deliveries. */
	[ST_WEBHOOK_PUT] = { STORE_RW,
		"INSERT INTO webhook_endpoints (id, url, secret, old_secret, old_secret_until_ms,"
		" events, rooms, max_attempts, timeout_ms, enabled, disabled_reason, failures,"
		" paused_until_ms, created_at)"
		" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"
		" ON CONFLICT (id) DO UPDATE SET url = ?2, secret = ?3, old_secret = ?4,"
		" old_secret_until_ms = ?5, events = ?6, rooms = ?7, max_attempts = ?8,"
		" timeout_ms = ?9, enabled = ?10, disabled_reason = ?11, failures = ?12,"
		" paused_until_ms = ?13" },
	[ST_WEBHOOK_DELETE] = { STORE_RW, "DELETE FROM webhook_endpoints WHERE id = ?1" },
	[ST_WEBHOOKS] = { STORE_ANY,
		"SELECT id, url, secret, old_secret, old_secret_until_ms, events, rooms,"
		" max_attempts, timeout_ms, enabled, disabled_reason, failures, paused_until_ms,"
		" created_at FROM webhook_endpoints ORDER BY created_at, id" },
	[ST_DELIVERY_ADD] = { STORE_RW,
		"INSERT INTO webhook_deliveries (endpoint_id, event, room, seq, body, status,"
		" next_attempt_ms, created_at, updated_at)"
		" VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?6, ?7, ?7)" },
	[ST_DELIVERY_GET] = { STORE_ANY,
		"SELECT id, endpoint_id, event, room, seq, status, attempts, next_attempt_ms,"
		" last_status, last_error, created_at, updated_at"
		" FROM webhook_deliveries WHERE id = ?1" },
	[ST_DELIVERY_UPDATE] = { STORE_RW,
		"UPDATE webhook_deliveries SET status = ?2, attempts = ?3, next_attempt_ms = ?4,"
		" last_status = ?5, last_error = ?6, updated_at = ?7 WHERE id = ?1" },
	[ST_DELIVERIES] = { STORE_ANY,
		"SELECT id, endpoint_id, event, room, seq, status, attempts, next_attempt_ms,"
		" last_status, last_error, created_at, updated_at FROM webhook_deliveries"
		" WHERE endpoint_id = ?1 AND id < ?2 ORDER BY id DESC LIMIT ?3" },
	[ST_DELIVERIES_STATUS] = { STORE_ANY,
		"SELECT id, endpoint_id, event, room, seq, status, attempts, next_attempt_ms,"
		" last_status, last_error, created_at, updated_at FROM webhook_deliveries"
		" WHERE endpoint_id = ?1 AND id < ?2 AND status = ?4 ORDER BY id DESC LIMIT ?3" },
	/* The courier's two questions, both answered from the partial index
	 * webhook_deliveries_due: what is due now, and when the next one is. */
	[ST_DELIVERIES_DUE] = { STORE_ANY,
		"SELECT id, attempts, body FROM webhook_deliveries"
		" WHERE endpoint_id = ?1 AND status IN ('pending', 'failed') AND next_attempt_ms <= ?2"
		" ORDER BY next_attempt_ms, id LIMIT ?3" },
	[ST_DELIVERY_NEXT_DUE] = { STORE_ANY,
		"SELECT min(next_attempt_ms) FROM webhook_deliveries"
		" WHERE endpoint_id = ?1 AND status IN ('pending', 'failed') AND next_attempt_ms > ?2" },
	/* Both counts read only the partial indexes. */
	[ST_DELIVERY_COUNTS] = { STORE_ANY,
		"SELECT (SELECT count(*) FROM webhook_deliveries WHERE status IN ('pending', 'failed')),"
		" (SELECT count(*) FROM webhook_deliveries WHERE status = 'dead')" },
	/* Workflows: the hub writes them; workers read them for the API. */
	[ST_WF_DEF_ADD] = { STORE_RW,
		"INSERT INTO workflow_definitions (name, steps, created_at) VALUES (?1, ?2, ?3)"
		" ON CONFLICT (name) DO NOTHING" },
	[ST_WF_DEF_GET] = { STORE_ANY,
		"SELECT name, steps, created_at FROM workflow_definitions WHERE name = ?1" },
	[ST_WF_DEFS] = { STORE_ANY,
		"SELECT name, steps, created_at FROM workflow_definitions ORDER BY name" },
	[ST_WF_ADD] = { STORE_RW,
		"INSERT INTO workflows (definition, status, step, data, version, created_by,"
		" created_at, updated_at) VALUES (?1, 'pending', 0, ?2, 1, ?3, ?4, ?4)" },
	[ST_WF_GET] = { STORE_ANY, STORE_WF_SELECT " WHERE w.id = ?1" },
	[ST_WF_UPDATE] = { STORE_RW,
		"UPDATE workflows SET status = ?2, step = ?3, version = ?4, updated_at = ?5"
		" WHERE id = ?1" },
	/* Newest first; each filter applies when given. */
	[ST_WF_LIST] = { STORE_ANY, STORE_WF_SELECT
		" WHERE w.id < ?1 AND (?2 IS NULL OR w.status = ?2)"
		" AND (?3 IS NULL OR w.definition = ?3) AND (?4 IS NULL OR w.created_by = ?4)"
		" ORDER BY w.id DESC LIMIT ?5" },
	[ST_WF_COUNTS] = { STORE_ANY,
		"SELECT status, count(*) AS n FROM workflows GROUP BY status" },
	[ST_WF_HISTORY_ADD] = { STORE_RW,
		"INSERT INTO workflow_history (workflow_id, actor, action, step, comment, time)"
		" VALUES (?1, ?2, ?3, ?4, ?5, ?6)" },
	[ST_WF_HISTORY] = { STORE_ANY,
		"SELECT actor, action, step, comment, time FROM workflow_history"
		" WHERE workflow_id = ?1 ORDER BY id" },
	/* An approver approves a step once: a second approval changes nothing. */
	[ST_WF_APPROVAL_ADD] = { STORE_RW,
		"INSERT INTO workflow_approvals (workflow_id, step, actor, comment, time)"
		" VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING" },
	[ST_WF_APPROVALS] = { STORE_ANY,
		"SELECT actor, comment, time FROM workflow_approvals"
		" WHERE workflow_id = ?1 AND step = ?2 ORDER BY rowid" },
	/* Socket.IO: global positions and recoverable sessions. */
	[ST_MAX_GPOS] = { STORE_ANY, "SELECT coalesce(max(last_gpos), 0) FROM rooms" },
	[ST_SIO_PUT] = { STORE_RW,
		"INSERT INTO sio_sessions (pid, sid, user, rooms, created_ms, updated_ms)"
		" VALUES (?1, ?2, ?3, ?4, ?5, ?5) ON CONFLICT (pid) DO UPDATE SET"
		" sid = excluded.sid, user = excluded.user, rooms = excluded.rooms,"
		" updated_ms = excluded.updated_ms" },
	[ST_SIO_GET] = { STORE_ANY,
		"SELECT sid, user, rooms, updated_ms FROM sio_sessions WHERE pid = ?1" },
	[ST_SIO_TOUCH] = { STORE_RW,
		"UPDATE sio_sessions SET updated_ms = max(updated_ms, ?2) WHERE pid = ?1" },
	[ST_SIO_PRUNE] = { STORE_RW,
		"DELETE FROM sio_sessions WHERE pid IN (SELECT pid FROM sio_sessions"
		" WHERE updated_ms < ?1 ORDER BY updated_ms LIMIT ?2)" },
};

struct store {
	sqlite3 *db;
	bool readonly;
	sqlite3_stmt *st[ST_COUNT];
	char err[256];
};

/* ---- errors and statements ------------------------------------------------ */

static void store_error(struct store *s, const char *what)
{
	snprintf(s->err, sizeof(s->err), "%s: %s", what,
		 s->db ? sqlite3_errmsg(s->db) : "out of memory");
}

const char *store_errmsg(struct store *s)
{
	return s->err[0] ? s->err : "no error";
}

/* The prepared statement id, or NULL (with the error set) when this handle
 * did not prepare it: a write asked of a read-only handle. */
static sqlite3_stmt *store_stmt(struct store *s, int id, const char *what)
{
	if (!s->st[id])
		snprintf(s->err, sizeof(s->err), "%s: not allowed on a read-only handle", what);
	return s->st[id];
}

/* Returns a statement to its idle state. A statement left mid-way would hold
 * its read snapshot open, and a reader that does so stops the WAL from being
 * checkpointed; the bindings may point into the caller's memory. */
static void stmt_done(sqlite3_stmt *st)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

/* Steps a statement that returns no rows; 0 or -1 with the error set. */
static int stmt_run(struct store *s, sqlite3_stmt *st, const char *what)
{
	int rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		store_error(s, what);
	stmt_done(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

static int store_run(struct store *s, int id, const char *what)
{
	sqlite3_stmt *st = store_stmt(s, id, what);
	return st ? stmt_run(s, st, what) : -1;
}

/* Binds NULL for a NULL string, so optional columns stay NULL. */
static int bind_str(sqlite3_stmt *st, int i, const char *v)
{
	return v ? sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC) : sqlite3_bind_null(st, i);
}

static const char *col_str(sqlite3_stmt *st, int i)
{
	return (const char *)sqlite3_column_text(st, i);
}

/* Runs a statement returning one integer (a PRAGMA); 0 or -1. */
static int store_query_int(struct store *s, const char *sql, int64_t *out)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
		store_error(s, sql);
		return -1;
	}
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*out = sqlite3_column_int64(st, 0);
	else
		store_error(s, sql);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 0 : -1;
}

static int store_exec(struct store *s, const char *sql, const char *what)
{
	if (sqlite3_exec(s->db, sql, NULL, NULL, NULL) != SQLITE_OK) {
		store_error(s, what);
		return -1;
	}
	return 0;
}

/* ---- opening and migrating ------------------------------------------------ */

static int64_t migrations_count(void)
{
	int64_t n = 0;
	while (store_migrations[n])
		n++;
	return n;
}

static int store_setup(struct store *s, bool full_sync)
{
	/* journal_mode answers with the mode in force: a file system without
	 * shared memory support leaves it at "delete", and then readers would
	 * block the hub, so that is an error rather than a slow surprise. */
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(s->db, "PRAGMA journal_mode = WAL", -1, &st, NULL) != SQLITE_OK) {
		store_error(s, "journal_mode");
		return -1;
	}
	int rc = sqlite3_step(st);
	bool wal = rc == SQLITE_ROW && col_str(st, 0) && strcmp(col_str(st, 0), "wal") == 0;
	if (rc != SQLITE_ROW)
		store_error(s, "journal_mode");
	else if (!wal)
		snprintf(s->err, sizeof(s->err), "journal_mode: WAL refused (got %s)",
			 col_str(st, 0) ? col_str(st, 0) : "nothing");
	sqlite3_finalize(st);
	if (!wal)
		return -1;

	/* NORMAL in WAL mode survives any process crash (kill -9); FULL also
	 * survives a power loss, at the price of an fsync per commit. */
	char sql[128];
	snprintf(sql, sizeof(sql),
		 "PRAGMA synchronous = %s; PRAGMA foreign_keys = ON; PRAGMA journal_size_limit = %d",
		 full_sync ? "FULL" : "NORMAL", STORE_WAL_LIMIT);
	return store_exec(s, sql, "pragmas");
}

/* Applies store_migrations[v..] each in its own transaction together with its
 * user_version, so a crash mid-way leaves a database at a known version. The
 * version is read inside the transaction: another process may have migrated
 * it meanwhile. */
static int store_migrate(struct store *s)
{
	int64_t known = migrations_count();
	for (;;) {
		int64_t v;
		if (store_exec(s, "BEGIN IMMEDIATE", "migrate") < 0)
			return -1;
		if (store_query_int(s, "PRAGMA user_version", &v) < 0)
			goto fail;
		if (v > known) {
			snprintf(s->err, sizeof(s->err),
				 "database schema version %lld is newer than this program's (%lld)",
				 (long long)v, (long long)known);
			goto fail;
		}
		if (v == known)
			return store_exec(s, "COMMIT", "migrate");
		char what[64], sql[64];
		snprintf(what, sizeof(what), "migration %lld", (long long)v + 1);
		if (store_exec(s, store_migrations[v], what) < 0)
			goto fail;
		snprintf(sql, sizeof(sql), "PRAGMA user_version = %lld", (long long)v + 1);
		if (store_exec(s, sql, what) < 0 || store_exec(s, "COMMIT", what) < 0)
			goto fail;
	}
fail:
	if (!sqlite3_get_autocommit(s->db))
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	return -1;
}

/* Readers never migrate: they need the schema this program was built for. */
static int store_check_version(struct store *s)
{
	int64_t v, known = migrations_count();
	if (store_query_int(s, "PRAGMA user_version", &v) < 0)
		return -1;
	if (v > known) {
		snprintf(s->err, sizeof(s->err),
			 "database schema version %lld is newer than this program's (%lld)",
			 (long long)v, (long long)known);
		return -1;
	}
	if (v < known) {
		snprintf(s->err, sizeof(s->err), "database not migrated (version %lld of %lld)",
			 (long long)v, (long long)known);
		return -1;
	}
	return 0;
}

static int store_prepare(struct store *s)
{
	enum store_mode skip = s->readonly ? STORE_RW : STORE_RO;
	for (int i = 0; i < ST_COUNT; i++) {
		if (store_sql[i].mode == skip)
			continue;
		if (sqlite3_prepare_v3(s->db, store_sql[i].sql, -1, SQLITE_PREPARE_PERSISTENT,
				       &s->st[i], NULL) != SQLITE_OK) {
			store_error(s, "prepare");
			return -1;
		}
	}
	return 0;
}

struct store *store_open(const char *path, bool readonly, bool full_sync,
			 char *err, size_t errlen)
{
	struct store *s = xcalloc(1, sizeof(*s));
	s->readonly = readonly;
	/* Every process is single-threaded: SQLite's own mutexes are not needed. */
	int flags = SQLITE_OPEN_NOMUTEX |
		    (readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
	if (sqlite3_open_v2(path, &s->db, flags, NULL) != SQLITE_OK) {
		store_error(s, "open");
		goto fail;
	}
	sqlite3_busy_timeout(s->db, STORE_BUSY_MS);
	if (readonly) {
		if (store_check_version(s) < 0)
			goto fail;
	} else if (store_setup(s, full_sync) < 0 || store_migrate(s) < 0) {
		goto fail;
	}
	if (store_prepare(s) < 0)
		goto fail;
	return s;
fail:
	snprintf(err, errlen, "%s", s->err);
	store_close(s);
	return NULL;
}

void store_close(struct store *s)
{
	if (!s)
		return;
	for (int i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(s->st[i]);
	/* The last connection to close checkpoints and removes the WAL file. */
	sqlite3_close(s->db);
	free(s);
}

/* ---- transactions --------------------------------------------------------- */

int store_begin(struct store *s)
{
	return store_run(s, s->readonly ? ST_BEGIN_READ : ST_BEGIN, "begin");
}

int store_commit(struct store *s)
{
	/* A failed COMMIT (SQLITE_BUSY) leaves the transaction open: the caller
	 * rolls back. */
	return store_run(s, ST_COMMIT, "commit");
}

void store_rollback(struct store *s)
{
	/* Some errors (SQLITE_FULL, SQLITE_IOERR) have rolled back already. */
	if (!sqlite3_get_autocommit(s->db))
		store_run(s, ST_ROLLBACK, "rollback");
}

bool store_writable(struct store *s)
{
	if (s->readonly || sqlite3_db_readonly(s->db, "main") != 0)
		return false;
	/* Inside store_begin's transaction the write lock is already ours. */
	if (!sqlite3_get_autocommit(s->db))
		return true;
	/* A health check must not stall the hub's loop for the busy timeout:
	 * if another writer holds the lock, the answer is "not now". */
	sqlite3_busy_timeout(s->db, 0);
	bool ok = store_run(s, ST_BEGIN, "writable") == 0;
	sqlite3_busy_timeout(s->db, STORE_BUSY_MS);
	if (ok)
		store_rollback(s);
	return ok;
}

/* ---- rooms ---------------------------------------------------------------- */

int store_room_get(struct store *s, const char *name, bool create, struct store_room *out)
{
	sqlite3_stmt *st = s->st[ST_ROOM_GET];
	if (sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC) != SQLITE_OK) {
		store_error(s, "room_get");
		stmt_done(st);
		return -1;
	}
	int rc = sqlite3_step(st), found = 0;
	if (rc == SQLITE_ROW) {
		out->id = sqlite3_column_int64(st, 0);
		snprintf(out->epoch, sizeof(out->epoch), "%s", col_str(st, 1) ? col_str(st, 1) : "");
		out->last_seq = sqlite3_column_int64(st, 2);
		found = 1;
	} else if (rc != SQLITE_DONE) {
		store_error(s, "room_get");
		found = -1;
	}
	stmt_done(st);
	if (found != 0 || !create)
		return found;

	if (!(st = store_stmt(s, ST_ROOM_ADD, "room_add")))
		return -1;
	char epoch[STORE_EPOCH_LEN + 1], ts[UTIL_TS_LEN + 1];
	random_hex(epoch, STORE_EPOCH_LEN / 2);
	ts_format(now_ms(), ts);
	if (sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_text(st, 2, epoch, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_text(st, 3, ts, -1, SQLITE_STATIC) != SQLITE_OK) {
		store_error(s, "room_add");
		stmt_done(st);
		return -1;
	}
	if (stmt_run(s, st, "room_add") < 0)
		return -1;
	out->id = sqlite3_last_insert_rowid(s->db);
	memcpy(out->epoch, epoch, sizeof(out->epoch));
	out->last_seq = 0;
	return 1;
}

int store_room_set_seq(struct store *s, int64_t room_id, int64_t last_seq, int64_t gpos)
{
	sqlite3_stmt *st = store_stmt(s, ST_ROOM_SET_SEQ, "room_set_seq");
	if (!st)
		return -1;
	sqlite3_bind_int64(st, 1, room_id);
	sqlite3_bind_int64(st, 2, last_seq);
	sqlite3_bind_int64(st, 3, gpos);
	if (stmt_run(s, st, "room_set_seq") < 0)
		return -1;
	if (sqlite3_changes(s->db) != 1) {
		snprintf(s->err, sizeof(s->err), "room_set_seq: no room %lld", (long long)room_id);
		return -1;
	}
	return 0;
}

/* Runs st (bound already) calling fn per row until it returns non-zero.
 * Returns the rows passed to fn, or -1. */
static int rooms_run(struct store *s, sqlite3_stmt *st, store_room_fn fn, void *arg)
{
	/* fn may call the other store_* functions, but must not create rooms:
	 * rows added to a table being read may or may not be visited. */
	int rc, n = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		n++;
		if (fn(sqlite3_column_int64(st, 0), col_str(st, 1), sqlite3_column_int64(st, 2), arg))
			break;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		store_error(s, "rooms");
	stmt_done(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? n : -1;
}

int store_rooms_each(struct store *s, store_room_fn fn, void *arg)
{
	return rooms_run(s, s->st[ST_ROOMS_EACH], fn, arg) < 0 ? -1 : 0;
}

int store_rooms_after(struct store *s, int64_t after_id, int limit, store_room_fn fn, void *arg)
{
	sqlite3_stmt *st = s->st[ST_ROOMS_AFTER];
	if (sqlite3_bind_int64(st, 1, after_id) != SQLITE_OK ||
	    sqlite3_bind_int(st, 2, limit) != SQLITE_OK) {
		store_error(s, "rooms_after");
		stmt_done(st);
		return -1;
	}
	return rooms_run(s, st, fn, arg);
}

/* ---- messages ------------------------------------------------------------- */

int store_message_add(struct store *s, int64_t room_id, int64_t seq, int64_t gpos,
		      const char *event, const char *data, size_t data_len, const char *ts,
		      const char *idem_key, int64_t now)
{
	sqlite3_stmt *st = store_stmt(s, ST_MSG_ADD, "message_add");
	if (!st)
		return -1;
	if (sqlite3_bind_int64(st, 1, room_id) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 2, seq) != SQLITE_OK ||
	    bind_str(st, 3, event) != SQLITE_OK ||
	    sqlite3_bind_text64(st, 4, data, data_len, SQLITE_STATIC, SQLITE_UTF8) != SQLITE_OK ||
	    bind_str(st, 5, ts) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 6, gpos) != SQLITE_OK) {
		store_error(s, "message_add");
		stmt_done(st);
		return -1;
	}
	if (stmt_run(s, st, "message_add") < 0)
		return -1;
	if (!idem_key)
		return 0;

	st = s->st[ST_IDEM_ADD];
	sqlite3_bind_int64(st, 1, room_id);
	if (sqlite3_bind_text(st, 2, idem_key, -1, SQLITE_STATIC) != SQLITE_OK) {
		store_error(s, "idem_add");
		stmt_done(st);
		return -1;
	}
	sqlite3_bind_int64(st, 3, seq);
	sqlite3_bind_int64(st, 4, now);
	return stmt_run(s, st, "idem_add");
}

int store_idem_find(struct store *s, int64_t room_id, const char *idem_key,
		    int64_t now, int64_t *seq)
{
	sqlite3_stmt *st = s->st[ST_IDEM_FIND];
	sqlite3_bind_int64(st, 1, room_id);
	if (sqlite3_bind_text(st, 2, idem_key, -1, SQLITE_STATIC) != SQLITE_OK) {
		store_error(s, "idem_find");
		stmt_done(st);
		return -1;
	}
	sqlite3_bind_int64(st, 3, now - STORE_IDEM_WINDOW_MS);
	int rc = sqlite3_step(st), found = 0;
	if (rc == SQLITE_ROW) {
		*seq = sqlite3_column_int64(st, 0);
		found = 1;
	} else if (rc != SQLITE_DONE) {
		store_error(s, "idem_find");
		found = -1;
	}
	stmt_done(st);
	return found;
}

int store_history(struct store *s, const char *room, int64_t after, int limit,
		  store_message_fn fn, void *arg)
{
	/* fn must not call store_history itself: the statement is in use. */
	sqlite3_stmt *st = s->st[ST_HISTORY];
	if (sqlite3_bind_text(st, 1, room, -1, SQLITE_STATIC) != SQLITE_OK) {
		store_error(s, "history");
		stmt_done(st);
		return -1;
	}
	sqlite3_bind_int64(st, 2, after);
	sqlite3_bind_int(st, 3, MAX(limit, 0));     /* a negative LIMIT means none */
	int rc, n = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_message m = {
			.seq = sqlite3_column_int64(st, 0),
			.event = col_str(st, 1),
			.data = col_str(st, 2),
			.data_len = (size_t)sqlite3_column_bytes(st, 2),
			.ts = col_str(st, 3),
			.gpos = sqlite3_column_int64(st, 4),
		};
		n++;
		if (fn(&m, arg))
			break;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		store_error(s, "history");
		n = -1;
	}
	stmt_done(st);
	return n;
}

int64_t store_first_seq(struct store *s, const char *room)
{
	sqlite3_stmt *st = s->st[ST_FIRST_SEQ];
	if (sqlite3_bind_text(st, 1, room, -1, SQLITE_STATIC) != SQLITE_OK) {
		store_error(s, "first_seq");
		stmt_done(st);
		return -1;
	}
	int rc = sqlite3_step(st);
	int64_t seq = 0;
	if (rc == SQLITE_ROW) {
		seq = sqlite3_column_int64(st, 0);
	} else if (rc != SQLITE_DONE) {
		store_error(s, "first_seq");
		seq = -1;
	}
	stmt_done(st);
	return seq;
}

int store_prune_room(struct store *s, int64_t room_id, int64_t max_seq,
		     const char *before_ts, int limit)
{
	/* What is due is a prefix of the room: seq <= max_seq by definition, and
	 * ts < before_ts because ts grows with seq. So the oldest rows are read
	 * in order only up to the first one not due, and that prefix is deleted
	 * as a range: a step costs the rows it deletes plus one, and a room with
	 * nothing due costs one row, however long its history. (Should the clock
	 * step back, rows behind a newer-looking one wait until it is due.) */
	if (limit <= 0)
		return 0;
	sqlite3_stmt *st = store_stmt(s, ST_PRUNE_SCAN, "prune");
	if (!st)
		return -1;
	sqlite3_bind_int64(st, 1, room_id);
	sqlite3_bind_int(st, 2, limit);
	int64_t cut = 0;
	bool due = false;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t seq = sqlite3_column_int64(st, 0);
		const char *ts = col_str(st, 1);
		if (seq > max_seq && !(before_ts && ts && strcmp(ts, before_ts) < 0))
			break;
		cut = seq;
		due = true;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		store_error(s, "prune");
		stmt_done(st);
		return -1;
	}
	stmt_done(st);

	int n = 0;
	if (due) {
		st = s->st[ST_PRUNE_MSGS];
		sqlite3_bind_int64(st, 1, room_id);
		sqlite3_bind_int64(st, 2, cut);
		if (stmt_run(s, st, "prune") < 0)
			return -1;
		n = sqlite3_changes(s->db);
	}
	return n;
}

int store_prune_idem(struct store *s, int64_t now, int limit)
{
	if (limit <= 0)
		return 0;
	sqlite3_stmt *st = store_stmt(s, ST_PRUNE_IDEM, "prune_idem");
	if (!st)
		return -1;
	sqlite3_bind_int64(st, 1, now - STORE_IDEM_WINDOW_MS);
	sqlite3_bind_int(st, 2, limit);
	if (stmt_run(s, st, "prune_idem") < 0)
		return -1;
	return sqlite3_changes(s->db);
}

/* ---- notifications -------------------------------------------------------- */

int64_t store_notification_add(struct store *s, const struct store_notification *n)
{
	sqlite3_stmt *st = store_stmt(s, ST_NOTIF_ADD, "notification_add");
	if (!st)
		return -1;
	if (bind_str(st, 1, n->user) != SQLITE_OK || bind_str(st, 2, n->type) != SQLITE_OK ||
	    bind_str(st, 3, n->title) != SQLITE_OK || bind_str(st, 4, n->message) != SQLITE_OK ||
	    bind_str(st, 5, n->data) != SQLITE_OK || bind_str(st, 6, n->action_url) != SQLITE_OK ||
	    bind_str(st, 7, n->created_at) != SQLITE_OK ||
	    (n->seq > 0 ? sqlite3_bind_int64(st, 8, n->seq) : sqlite3_bind_null(st, 8)) != SQLITE_OK) {
		store_error(s, "notification_add");
		stmt_done(st);
		return -1;
	}
	if (stmt_run(s, st, "notification_add") < 0)
		return -1;
	return sqlite3_last_insert_rowid(s->db);
}

/* Text column i as a JSON string, or null (NULL, or not valid UTF-8). */
static json_t *col_json_str(sqlite3_stmt *st, int i)
{
	const char *v = col_str(st, i);
	json_t *j = v ? json_stringn(v, (size_t)sqlite3_column_bytes(st, i)) : NULL;
	return j ? j : json_null();
}

static json_t *notification_json(sqlite3_stmt *st)
{
	const char *data = col_str(st, 5);
	json_t *d = data ? json_loadb(data, (size_t)sqlite3_column_bytes(st, 5), JSON_DECODE_ANY,
				      NULL) : NULL;
	json_t *o = json_object();
	json_object_set_new(o, "id", json_integer(sqlite3_column_int64(st, 0)));
	json_object_set_new(o, "user", col_json_str(st, 1));
	json_object_set_new(o, "type", col_json_str(st, 2));
	json_object_set_new(o, "title", col_json_str(st, 3));
	json_object_set_new(o, "message", col_json_str(st, 4));
	json_object_set_new(o, "data", d ? d : json_null());
	json_object_set_new(o, "action_url", col_json_str(st, 6));
	json_object_set_new(o, "read", json_boolean(sqlite3_column_type(st, 7) != SQLITE_NULL));
	json_object_set_new(o, "read_at", col_json_str(st, 7));
	json_object_set_new(o, "created_at", col_json_str(st, 8));
	json_object_set_new(o, "seq", sqlite3_column_type(st, 9) == SQLITE_NULL
					      ? json_null() : json_integer(sqlite3_column_int64(st, 9)));
	return o;
}

json_t *store_notifications_list(struct store *s, const char *user, bool unread_only,
				 int limit, int64_t before)
{
	sqlite3_stmt *st = s->st[unread_only ? ST_NOTIF_LIST_UNREAD : ST_NOTIF_LIST];
	if (sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC) != SQLITE_OK) {
		store_error(s, "notifications_list");
		stmt_done(st);
		return NULL;
	}
	sqlite3_bind_int64(st, 2, before > 0 ? before : INT64_MAX);
	sqlite3_bind_int(st, 3, MAX(limit, 0));
	json_t *list = json_array();
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		json_array_append_new(list, notification_json(st));
	if (rc != SQLITE_DONE) {
		store_error(s, "notifications_list");
		json_decref(list);
		list = NULL;
	}
	stmt_done(st);
	return list;
}

int store_notifications_read(struct store *s, const char *user, const int64_t *ids,
			     size_t nids, const char *ts)
{
	sqlite3_stmt *st;
	int count = 0;
	if (!ids) {
		if (!(st = store_stmt(s, ST_NOTIF_READ_ALL, "notifications_read")))
			return -1;
		if (bind_str(st, 1, user) != SQLITE_OK || bind_str(st, 2, ts) != SQLITE_OK) {
			store_error(s, "notifications_read");
			stmt_done(st);
			return -1;
		}
		if (stmt_run(s, st, "notifications_read") < 0)
			return -1;
		return sqlite3_changes(s->db);
	}
	if (!(st = store_stmt(s, ST_NOTIF_READ, "notifications_read")) ||
	    store_run(s, ST_SAVEPOINT, "notifications_read") < 0)
		return -1;
	for (size_t i = 0; i < nids; i++) {
		if (bind_str(st, 1, user) != SQLITE_OK || bind_str(st, 3, ts) != SQLITE_OK) {
			store_error(s, "notifications_read");
			stmt_done(st);
			goto fail;
		}
		sqlite3_bind_int64(st, 2, ids[i]);
		if (stmt_run(s, st, "notifications_read") < 0)
			goto fail;
		count += sqlite3_changes(s->db);
	}
	if (store_run(s, ST_RELEASE, "notifications_read") < 0)
		goto fail;
	return count;
fail:;
	/* ROLLBACK TO keeps the savepoint open; RELEASE then ends it (and the
	 * transaction it started, when there was none before). The first error is
	 * the one worth reporting: an I/O error may have rolled everything back
	 * already, and then these fail too. */
	char first[sizeof(s->err)];
	memcpy(first, s->err, sizeof(first));
	store_run(s, ST_ROLLBACK_TO, "notifications_read");
	store_run(s, ST_RELEASE, "notifications_read");
	memcpy(s->err, first, sizeof(first));
	return -1;
}

int64_t store_unread_count(struct store *s, const char *user)
{
	sqlite3_stmt *st = s->st[ST_UNREAD_COUNT];
	if (sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC) != SQLITE_OK) {
		store_error(s, "unread_count");
		stmt_done(st);
		return -1;
	}
	int rc = sqlite3_step(st);
	int64_t n = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
	if (rc != SQLITE_ROW)
		store_error(s, "unread_count");
	stmt_done(st);
	return n;
}

int store_limit_size(struct store *s, size_t bytes)
{
	int64_t page, now;
	if (store_query_int(s, "PRAGMA page_size", &page) < 0)
		return -1;
	/* 0: as large as SQLite allows. A limit below the file's size leaves it
	 * as it is, refusing only growth. */
	int64_t pages = bytes ? (int64_t)(bytes / (size_t)page) : 4294967294LL;
	char sql[64];
	snprintf(sql, sizeof(sql), "PRAGMA max_page_count = %lld", (long long)MAX(pages, 1));
	return store_query_int(s, sql, &now);
}

/* ---- webhooks: endpoints and the delivery outbox (hub) -------------------- */

/* Binds v, or NULL when v is 0 (an optional integer column). */
static int bind_opt_int(sqlite3_stmt *st, int i, int64_t v)
{
	return v ? sqlite3_bind_int64(st, i, v) : sqlite3_bind_null(st, i);
}

/* Every row a statement returns, as objects keyed by column name. */
static json_t *rows_json(struct store *s, sqlite3_stmt *st, const char *what)
{
	json_t *rows = json_array();
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		json_t *o = json_object();
		for (int i = 0; i < sqlite3_column_count(st); i++) {
			json_t *v;
			switch (sqlite3_column_type(st, i)) {
			case SQLITE_INTEGER:
				v = json_integer(sqlite3_column_int64(st, i));
				break;
			case SQLITE_NULL:
				v = json_null();
				break;
			default:
				v = col_json_str(st, i);
			}
			json_object_set_new(o, sqlite3_column_name(st, i), v);
		}
		json_array_append_new(rows, o);
	}
	if (rc != SQLITE_DONE) {
		store_error(s, what);
		json_decref(rows);
		rows = NULL;
	}
	stmt_done(st);
	return rows;
}

int store_webhook_put(struct store *s, const struct store_webhook *w)
{
	sqlite3_stmt *st = store_stmt(s, ST_WEBHOOK_PUT, "webhook_put");
	if (!st)
		return -1;
	if (bind_str(st, 1, w->id) != SQLITE_OK || bind_str(st, 2, w->url) != SQLITE_OK ||
	    bind_str(st, 3, w->secret) != SQLITE_OK || bind_str(st, 4, w->old_secret) != SQLITE_OK ||
	    bind_opt_int(st, 5, w->old_secret_until_ms) != SQLITE_OK ||
	    bind_str(st, 6, w->events) != SQLITE_OK || bind_str(st, 7, w->rooms) != SQLITE_OK ||
	    sqlite3_bind_int(st, 8, w->max_attempts) != SQLITE_OK ||
	    sqlite3_bind_int(st, 9, w->timeout_ms) != SQLITE_OK ||
	    sqlite3_bind_int(st, 10, w->enabled) != SQLITE_OK ||
	    bind_str(st, 11, w->disabled_reason) != SQLITE_OK ||
	    sqlite3_bind_int(st, 12, w->failures) != SQLITE_OK ||
	    bind_opt_int(st, 13, w->paused_until_ms) != SQLITE_OK ||
	    bind_str(st, 14, w->created_at) != SQLITE_OK) {
		store_error(s, "webhook_put");
		stmt_done(st);
		return -1;
	}
	return stmt_run(s, st, "webhook_put");
}

int store_webhook_delete(struct store *s, const char *id)
{
	sqlite3_stmt *st = store_stmt(s, ST_WEBHOOK_DELETE, "webhook_delete");
	if (!st)
		return -1;
	if (bind_str(st, 1, id) != SQLITE_OK) {
		store_error(s, "webhook_delete");
		stmt_done(st);
		return -1;
	}
	if (stmt_run(s, st, "webhook_delete") < 0)
		return -1;
	return sqlite3_changes(s->db) > 0;
}

json_t *store_webhooks(struct store *s)
{
	return rows_json(s, s->st[ST_WEBHOOKS], "webhooks");
}

int64_t store_delivery_add(struct store *s, const char *endpoint, const char *event,
			   const char *room, int64_t seq, const char *body, size_t len,
			   int64_t next_attempt_ms, const char *ts)
{
	sqlite3_stmt *st = store_stmt(s, ST_DELIVERY_ADD, "delivery_add");
	if (!st)
		return -1;
	if (bind_str(st, 1, endpoint) != SQLITE_OK || bind_str(st, 2, event) != SQLITE_OK ||
	    bind_str(st, 3, room) != SQLITE_OK || bind_opt_int(st, 4, seq) != SQLITE_OK ||
	    sqlite3_bind_text(st, 5, body, (int)len, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 6, next_attempt_ms) != SQLITE_OK ||
	    bind_str(st, 7, ts) != SQLITE_OK) {
		store_error(s, "delivery_add");
		stmt_done(st);
		return -1;
	}
	if (stmt_run(s, st, "delivery_add") < 0)
		return -1;
	return sqlite3_last_insert_rowid(s->db);
}

json_t *store_delivery_get(struct store *s, int64_t id)
{
	sqlite3_stmt *st = s->st[ST_DELIVERY_GET];
	sqlite3_bind_int64(st, 1, id);
	json_t *rows = rows_json(s, st, "delivery_get");
	json_t *row = json_incref(json_array_get(rows, 0));
	json_decref(rows);
	return row;
}

int store_delivery_update(struct store *s, int64_t id, const char *status, int attempts,
			  int64_t next_attempt_ms, int last_status, const char *last_error,
			  const char *ts)
{
	sqlite3_stmt *st = store_stmt(s, ST_DELIVERY_UPDATE, "delivery_update");
	if (!st)
		return -1;
	if (sqlite3_bind_int64(st, 1, id) != SQLITE_OK || bind_str(st, 2, status) != SQLITE_OK ||
	    sqlite3_bind_int(st, 3, attempts) != SQLITE_OK ||
	    bind_opt_int(st, 4, next_attempt_ms) != SQLITE_OK ||
	    bind_opt_int(st, 5, last_status) != SQLITE_OK ||
	    bind_str(st, 6, last_error) != SQLITE_OK || bind_str(st, 7, ts) != SQLITE_OK) {
		store_error(s, "delivery_update");
		stmt_done(st);
		return -1;
	}
	return stmt_run(s, st, "delivery_update");
}

json_t *store_deliveries(struct store *s, const char *endpoint, const char *status, int limit,
			 int64_t before)
{
	sqlite3_stmt *st = s->st[status ? ST_DELIVERIES_STATUS : ST_DELIVERIES];
	if (bind_str(st, 1, endpoint) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 2, before > 0 ? before : INT64_MAX) != SQLITE_OK ||
	    sqlite3_bind_int(st, 3, MAX(limit, 0)) != SQLITE_OK ||
	    (status && bind_str(st, 4, status) != SQLITE_OK)) {
		store_error(s, "deliveries");
		stmt_done(st);
		return NULL;
	}
	return rows_json(s, st, "deliveries");
}

int store_deliveries_due(struct store *s, const char *endpoint, int64_t now_ms, int limit,
			 store_due_fn fn, void *arg)
{
	sqlite3_stmt *st = s->st[ST_DELIVERIES_DUE];
	int rc, n = 0;
	bind_str(st, 1, endpoint);
	sqlite3_bind_int64(st, 2, now_ms);
	sqlite3_bind_int(st, 3, limit);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		n++;
		fn(arg, sqlite3_column_int64(st, 0), (int)sqlite3_column_int(st, 1),
		   (const char *)sqlite3_column_text(st, 2), (size_t)sqlite3_column_bytes(st, 2));
	}
	if (rc != SQLITE_DONE) {
		store_error(s, "deliveries_due");
		n = -1;
	}
	stmt_done(st);
	return n;
}

int64_t store_delivery_next_due(struct store *s, const char *endpoint, int64_t after_ms)
{
	sqlite3_stmt *st = s->st[ST_DELIVERY_NEXT_DUE];
	bind_str(st, 1, endpoint);
	sqlite3_bind_int64(st, 2, after_ms);
	int rc = sqlite3_step(st);
	int64_t next = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;   /* NULL reads 0 */
	if (rc != SQLITE_ROW)
		store_error(s, "delivery_next_due");
	stmt_done(st);
	return next;
}

int store_delivery_counts(struct store *s, int64_t *queued, int64_t *dead)
{
	sqlite3_stmt *st = s->st[ST_DELIVERY_COUNTS];
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*queued = sqlite3_column_int64(st, 0);
		*dead = sqlite3_column_int64(st, 1);
	} else {
		store_error(s, "delivery_counts");
	}
	stmt_done(st);
	return rc == SQLITE_ROW ? 0 : -1;
}

/* ---- workflows ------------------------------------------------------------- */

/* The first row a statement returns: 1 with *out set, 0 when none, -1. */
static int one_row(struct store *s, sqlite3_stmt *st, const char *what, json_t **out)
{
	json_t *rows = rows_json(s, st, what);
	if (!rows)
		return -1;
	*out = json_incref(json_array_get(rows, 0));
	json_decref(rows);
	return *out != NULL;
}

int store_workflow_def_add(struct store *s, const char *name, const char *steps, const char *ts)
{
	sqlite3_stmt *st = store_stmt(s, ST_WF_DEF_ADD, "workflow_def_add");
	if (!st)
		return -1;
	if (bind_str(st, 1, name) != SQLITE_OK || bind_str(st, 2, steps) != SQLITE_OK ||
	    bind_str(st, 3, ts) != SQLITE_OK) {
		store_error(s, "workflow_def_add");
		stmt_done(st);
		return -1;
	}
	if (stmt_run(s, st, "workflow_def_add") < 0)
		return -1;
	return sqlite3_changes(s->db) > 0;
}

int store_workflow_def(struct store *s, const char *name, json_t **out)
{
	sqlite3_stmt *st = s->st[ST_WF_DEF_GET];
	if (bind_str(st, 1, name) != SQLITE_OK) {
		store_error(s, "workflow_def");
		stmt_done(st);
		return -1;
	}
	return one_row(s, st, "workflow_def", out);
}

json_t *store_workflow_defs(struct store *s)
{
	return rows_json(s, s->st[ST_WF_DEFS], "workflow_defs");
}

int64_t store_workflow_add(struct store *s, const char *definition, const char *data,
			   const char *created_by, const char *ts)
{
	sqlite3_stmt *st = store_stmt(s, ST_WF_ADD, "workflow_add");
	if (!st)
		return -1;
	if (bind_str(st, 1, definition) != SQLITE_OK || bind_str(st, 2, data) != SQLITE_OK ||
	    bind_str(st, 3, created_by) != SQLITE_OK || bind_str(st, 4, ts) != SQLITE_OK) {
		store_error(s, "workflow_add");
		stmt_done(st);
		return -1;
	}
	if (stmt_run(s, st, "workflow_add") < 0)
		return -1;
	return sqlite3_last_insert_rowid(s->db);
}

int store_workflow_get(struct store *s, int64_t id, json_t **out)
{
	sqlite3_stmt *st = s->st[ST_WF_GET];
	sqlite3_bind_int64(st, 1, id);
	return one_row(s, st, "workflow_get", out);
}

int store_workflow_update(struct store *s, int64_t id, const char *status, int step,
			  int64_t version, const char *ts)
{
	sqlite3_stmt *st = store_stmt(s, ST_WF_UPDATE, "workflow_update");
	if (!st)
		return -1;
	if (sqlite3_bind_int64(st, 1, id) != SQLITE_OK || bind_str(st, 2, status) != SQLITE_OK ||
	    sqlite3_bind_int(st, 3, step) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 4, version) != SQLITE_OK || bind_str(st, 5, ts) != SQLITE_OK) {
		store_error(s, "workflow_update");
		stmt_done(st);
		return -1;
	}
	return stmt_run(s, st, "workflow_update");
}

json_t *store_workflows(struct store *s, const struct store_workflow_filter *f)
{
	sqlite3_stmt *st = s->st[ST_WF_LIST];
	if (sqlite3_bind_int64(st, 1, f->before > 0 ? f->before : INT64_MAX) != SQLITE_OK ||
	    bind_str(st, 2, f->status) != SQLITE_OK || bind_str(st, 3, f->definition) != SQLITE_OK ||
	    bind_str(st, 4, f->created_by) != SQLITE_OK ||
	    sqlite3_bind_int(st, 5, MAX(f->limit, 0)) != SQLITE_OK) {
		store_error(s, "workflows");
		stmt_done(st);
		return NULL;
	}
	return rows_json(s, st, "workflows");
}

json_t *store_workflow_counts(struct store *s)
{
	json_t *rows = rows_json(s, s->st[ST_WF_COUNTS], "workflow_counts");
	if (!rows)
		return NULL;
	json_t *out = json_object();
	size_t i;
	json_t *r;
	json_array_foreach(rows, i, r) {
		const char *status = json_string_value(json_object_get(r, "status"));
		if (status)
			json_object_set(out, status, json_object_get(r, "n"));
	}
	json_decref(rows);
	return out;
}

int store_workflow_history_add(struct store *s, int64_t id, const char *actor,
			       const char *action, const char *step, const char *comment,
			       const char *ts)
{
	sqlite3_stmt *st = store_stmt(s, ST_WF_HISTORY_ADD, "workflow_history_add");
	if (!st)
		return -1;
	if (sqlite3_bind_int64(st, 1, id) != SQLITE_OK || bind_str(st, 2, actor) != SQLITE_OK ||
	    bind_str(st, 3, action) != SQLITE_OK || bind_str(st, 4, step) != SQLITE_OK ||
	    bind_str(st, 5, comment) != SQLITE_OK || bind_str(st, 6, ts) != SQLITE_OK) {
		store_error(s, "workflow_history_add");
		stmt_done(st);
		return -1;
	}
	return stmt_run(s, st, "workflow_history_add");
}

json_t *store_workflow_history(struct store *s, int64_t id)
{
	sqlite3_stmt *st = s->st[ST_WF_HISTORY];
	sqlite3_bind_int64(st, 1, id);
	return rows_json(s, st, "workflow_history");
}

int store_workflow_approval_add(struct store *s, int64_t id, int step, const char *actor,
				const char *comment, const char *ts)
{
	sqlite3_stmt *st = store_stmt(s, ST_WF_APPROVAL_ADD, "workflow_approval_add");
	if (!st)
		return -1;
	if (sqlite3_bind_int64(st, 1, id) != SQLITE_OK || sqlite3_bind_int(st, 2, step) != SQLITE_OK ||
	    bind_str(st, 3, actor) != SQLITE_OK || bind_str(st, 4, comment) != SQLITE_OK ||
	    bind_str(st, 5, ts) != SQLITE_OK) {
		store_error(s, "workflow_approval_add");
		stmt_done(st);
		return -1;
	}
	if (stmt_run(s, st, "workflow_approval_add") < 0)
		return -1;
	return sqlite3_changes(s->db) > 0;
}

json_t *store_workflow_approvals(struct store *s, int64_t id, int step)
{
	sqlite3_stmt *st = s->st[ST_WF_APPROVALS];
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int(st, 2, step);
	return rows_json(s, st, "workflow_approvals");
}

/* ---- Socket.IO sessions ---------------------------------------------------- */

int64_t store_max_gpos(struct store *s)
{
	sqlite3_stmt *st = s->st[ST_MAX_GPOS];
	int64_t v = -1;
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	else
		store_error(s, "max_gpos");
	stmt_done(st);
	return v;
}

int store_sio_put(struct store *s, const struct store_sio_session *ss, int64_t now)
{
	sqlite3_stmt *st = store_stmt(s, ST_SIO_PUT, "sio_put");
	if (!st)
		return -1;
	if (bind_str(st, 1, ss->pid) != SQLITE_OK || bind_str(st, 2, ss->sid) != SQLITE_OK ||
	    bind_str(st, 3, ss->user) != SQLITE_OK || bind_str(st, 4, ss->rooms) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 5, now) != SQLITE_OK) {
		store_error(s, "sio_put");
		stmt_done(st);
		return -1;
	}
	return stmt_run(s, st, "sio_put");
}

int store_sio_touch(struct store *s, const char *pid, int64_t now)
{
	sqlite3_stmt *st = store_stmt(s, ST_SIO_TOUCH, "sio_touch");
	if (!st)
		return -1;
	if (bind_str(st, 1, pid) != SQLITE_OK || sqlite3_bind_int64(st, 2, now) != SQLITE_OK) {
		store_error(s, "sio_touch");
		stmt_done(st);
		return -1;
	}
	return stmt_run(s, st, "sio_touch");
}

int store_sio_prune(struct store *s, int64_t before_ms, int limit)
{
	sqlite3_stmt *st = store_stmt(s, ST_SIO_PRUNE, "sio_prune");
	if (!st)
		return -1;
	sqlite3_bind_int64(st, 1, before_ms);
	sqlite3_bind_int(st, 2, limit);
	if (stmt_run(s, st, "sio_prune") < 0)
		return -1;
	return sqlite3_changes(s->db);
}

int store_sio_get(struct store *s, const char *pid, json_t **out)
{
	sqlite3_stmt *st = s->st[ST_SIO_GET];
	*out = NULL;
	if (bind_str(st, 1, pid) != SQLITE_OK) {
		store_error(s, "sio_get");
		stmt_done(st);
		return -1;
	}
	int rc = sqlite3_step(st), found = 0;
	if (rc == SQLITE_ROW) {
		json_t *rooms = json_loads(col_str(st, 2), 0, NULL);
		const char *user = col_str(st, 1);
		*out = json_pack("{s:s, s:o, s:o, s:I}", "sid", col_str(st, 0),
				 "user", user ? json_string(user) : json_null(),
				 "rooms", rooms ? rooms : json_object(),
				 "updated_ms", (json_int_t)sqlite3_column_int64(st, 3));
		found = *out ? 1 : -1;
	} else if (rc != SQLITE_DONE) {
		store_error(s, "sio_get");
		found = -1;
	}
	stmt_done(st);
	return found;
}
