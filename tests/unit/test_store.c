/* test_store.c -- unit tests for store.c against real SQLite files in a
 * temporary directory: migrations, rooms, history, retention, idempotency,
 * transactions, WAL readers and notifications. */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sqlite3.h>

#include "store.h"
#include "util.h"
#include "test.h"

static char dir[64];
static char path[128];

/* A fresh directory per test, so no test sees another's database. */
static void db_setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/herald-store-XXXXXX");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		exit(1);
	}
	snprintf(path, sizeof(path), "%s/herald.db", dir);
}

static void db_cleanup(void)
{
	static const char *const suffix[] = { "", "-wal", "-shm", "-journal" };
	char p[160];
	for (size_t i = 0; i < ARRAY_SIZE(suffix); i++) {
		snprintf(p, sizeof(p), "%s%s", path, suffix[i]);
		unlink(p);
	}
	rmdir(dir);
}

static struct store *open_rw(void)
{
	char err[256] = "";
	struct store *s = store_open(path, false, false, err, sizeof(err));
	if (!s)
		fprintf(stderr, "store_open(%s): %s\n", path, err);
	return s;
}

static struct store *open_ro(void)
{
	char err[256] = "";
	struct store *s = store_open(path, true, false, err, sizeof(err));
	if (!s)
		fprintf(stderr, "store_open(%s, readonly): %s\n", path, err);
	return s;
}

static int migrations_count(void)
{
	int n = 0;
	while (store_migrations[n])
		n++;
	return n;
}

/* One integer from a query on a separate, plain SQLite connection: what an
 * operator with the sqlite3 shell would see. */
static int64_t raw_int(const char *sql)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	int64_t v = -12345;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
		if (sqlite3_step(st) == SQLITE_ROW)
			v = sqlite3_column_int64(st, 0);
		sqlite3_finalize(st);
	}
	sqlite3_close(db);
	return v;
}

static int raw_exec(const char *sql)
{
	sqlite3 *db;
	int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
	sqlite3_close(db);
	return rc == SQLITE_OK ? 0 : -1;
}

static bool is_hex(const char *s, size_t n)
{
	if (strlen(s) != n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!strchr("0123456789abcdef", s[i]))
			return false;
	return true;
}

/* Adds message seq to room with a JSON body naming it, and moves last_seq. */
static int add_msg(struct store *s, int64_t room_id, int64_t seq, const char *ts,
		   const char *idem, int64_t now)
{
	char data[64];
	snprintf(data, sizeof(data), "{\"n\":%lld}", (long long)seq);
	if (store_message_add(s, room_id, seq, seq, "tick", data, strlen(data), ts, idem, now) < 0)
		return -1;
	return store_room_set_seq(s, room_id, seq, seq);
}

/* Collects what store_history passes, stopping after stop_after rows. */
struct collect {
	int64_t seqs[64];
	int n;
	int stop_after;
	char last_data[64];
	char last_event[16];
	char last_ts[32];
};

static int collect_fn(const struct store_message *m, void *arg)
{
	struct collect *c = arg;
	if (c->n < (int)ARRAY_SIZE(c->seqs))
		c->seqs[c->n] = m->seq;
	c->n++;
	snprintf(c->last_data, sizeof(c->last_data), "%.*s", (int)m->data_len, m->data);
	snprintf(c->last_event, sizeof(c->last_event), "%s", m->event);
	snprintf(c->last_ts, sizeof(c->last_ts), "%s", m->ts);
	return c->stop_after && c->n >= c->stop_after;
}

static int history(struct store *s, const char *room, int64_t after, int limit,
		   struct collect *c, int stop_after)
{
	memset(c, 0, sizeof(*c));
	c->stop_after = stop_after;
	return store_history(s, room, after, limit, collect_fn, c);
}

/* ---- opening and migrations ---------------------------------------------- */

static void test_migrate(void)
{
	db_setup();
	CHECK(migrations_count() >= 1);
	struct store *s = open_rw();
	CHECK(s != NULL);
	store_close(s);
	CHECK_EQ_INT(raw_int("PRAGMA user_version"), migrations_count());
	CHECK_EQ_INT(raw_int("SELECT count(*) FROM sqlite_schema WHERE type = 'table'"
			     " AND name IN ('rooms', 'messages', 'idempotency', 'notifications')"), 4);
	CHECK_EQ_INT(raw_int("SELECT journal_mode = 'wal' FROM pragma_journal_mode"), 1);

	/* A second open finds the schema current and changes nothing: the row
	 * added in between survives, the version stays. */
	CHECK_EQ_INT(raw_exec("INSERT INTO rooms (name, epoch, created_at)"
			      " VALUES ('kept', '0123456789abcdef', '2026-01-01T00:00:00.000Z')"), 0);
	s = open_rw();
	CHECK(s != NULL);
	struct store_room r;
	CHECK_EQ_INT(store_room_get(s, "kept", false, &r), 1);
	CHECK_EQ_STR(r.epoch, "0123456789abcdef");
	store_close(s);
	CHECK_EQ_INT(raw_int("PRAGMA user_version"), migrations_count());
	db_cleanup();
}

static void test_readonly_open(void)
{
	char err[256];
	db_setup();
	/* Missing file: a reader never creates the database. */
	err[0] = '\0';
	CHECK(store_open(path, true, false, err, sizeof(err)) == NULL);
	CHECK(err[0] != '\0');
	CHECK(access(path, F_OK) != 0);

	/* An SQLite file nobody migrated. */
	CHECK_EQ_INT(raw_exec("CREATE TABLE other (x)"), 0);
	err[0] = '\0';
	CHECK(store_open(path, true, false, err, sizeof(err)) == NULL);
	CHECK(strstr(err, "not migrated") != NULL);
	db_cleanup();

	/* Migrated: it opens, reads, and refuses writes. */
	db_setup();
	struct store *w = open_rw();
	struct store_room r;
	CHECK_EQ_INT(store_room_get(w, "global", true, &r), 1);
	store_close(w);
	struct store *ro = open_ro();
	CHECK(ro != NULL);
	if (ro) {
		CHECK_EQ_INT(store_room_get(ro, "global", false, &r), 1);
		CHECK_EQ_INT(store_room_get(ro, "fresh", true, &r), -1);
		CHECK(strstr(store_errmsg(ro), "read-only") != NULL);
		CHECK_EQ_INT(store_message_add(ro, r.id, 1, 1, "e", "1", 1, "x", NULL, 0), -1);
		CHECK(!store_writable(ro));
		/* A reader's transaction is a consistent snapshot, not a write lock. */
		CHECK_EQ_INT(store_begin(ro), 0);
		CHECK_EQ_INT(store_commit(ro), 0);
		store_close(ro);
	}
	db_cleanup();
}

static void test_newer_version(void)
{
	char err[256], sql[64];
	db_setup();
	store_close(open_rw());
	snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", migrations_count() + 1);
	CHECK_EQ_INT(raw_exec(sql), 0);
	err[0] = '\0';
	CHECK(store_open(path, false, false, err, sizeof(err)) == NULL);
	CHECK(strstr(err, "newer") != NULL);
	err[0] = '\0';
	CHECK(store_open(path, true, false, err, sizeof(err)) == NULL);
	CHECK(strstr(err, "newer") != NULL);
	/* Refused, not downgraded. */
	CHECK_EQ_INT(raw_int("PRAGMA user_version"), migrations_count() + 1);
	db_cleanup();
}

static void test_durability_full(void)
{
	char err[256];
	db_setup();
	struct store *s = store_open(path, false, true, err, sizeof(err));
	CHECK(s != NULL);
	if (!s) {
		db_cleanup();
		return;
	}
	struct store_room r;
	char ts[UTIL_TS_LEN + 1];
	ts_format(now_ms(), ts);
	CHECK_EQ_INT(store_room_get(s, "race:1", true, &r), 1);
	CHECK_EQ_INT(store_begin(s), 0);
	CHECK_EQ_INT(add_msg(s, r.id, 1, ts, NULL, now_ms()), 0);
	CHECK_EQ_INT(store_commit(s), 0);
	CHECK(store_writable(s));
	store_close(s);
	CHECK_EQ_INT(raw_int("SELECT count(*) FROM messages"), 1);
	db_cleanup();
}

/* ---- rooms ------------------------------------------------------------ */

struct room_list {
	char names[8][32];
	int64_t seqs[8];
	int n, stop_after;
};

static int room_fn(int64_t id, const char *name, int64_t last_seq, void *arg)
{
	struct room_list *l = arg;
	if (l->n < 8) {
		snprintf(l->names[l->n], sizeof(l->names[0]), "%s", name);
		l->seqs[l->n] = last_seq;
	}
	l->n++;
	return l->stop_after && l->n >= l->stop_after;
}

static void test_rooms(void)
{
	db_setup();
	struct store *s = open_rw();
	struct store_room a, b, c;
	CHECK_EQ_INT(store_room_get(s, "race:1", false, &a), 0);
	CHECK_EQ_INT(store_room_get(s, "race:1", true, &a), 1);
	CHECK(a.id > 0);
	CHECK_EQ_INT(a.last_seq, 0);
	CHECK(is_hex(a.epoch, STORE_EPOCH_LEN));
	CHECK_EQ_INT(store_room_get(s, "race:1", true, &b), 1);
	CHECK_EQ_INT(b.id, a.id);
	CHECK_EQ_STR(b.epoch, a.epoch);
	CHECK_EQ_INT(store_room_get(s, "global", true, &c), 1);
	CHECK(c.id != a.id);
	CHECK(strcmp(c.epoch, a.epoch) != 0);

	CHECK_EQ_INT(store_room_set_seq(s, a.id, 42, 42), 0);
	CHECK_EQ_INT(store_room_set_seq(s, 9999, 1, 1), -1);
	store_close(s);

	/* Epoch and seq are what a client resumes with: they survive a restart. */
	s = open_rw();
	CHECK_EQ_INT(store_room_get(s, "race:1", false, &b), 1);
	CHECK_EQ_INT(b.id, a.id);
	CHECK_EQ_STR(b.epoch, a.epoch);
	CHECK_EQ_INT(b.last_seq, 42);

	struct room_list l = { 0 };
	CHECK_EQ_INT(store_rooms_each(s, room_fn, &l), 0);
	CHECK_EQ_INT(l.n, 2);
	CHECK_EQ_STR(l.names[0], "global");
	CHECK_EQ_STR(l.names[1], "race:1");
	CHECK_EQ_INT(l.seqs[1], 42);
	memset(&l, 0, sizeof(l));
	l.stop_after = 1;
	CHECK_EQ_INT(store_rooms_each(s, room_fn, &l), 0);
	CHECK_EQ_INT(l.n, 1);

	/* Pruning's walk: by id, from after a cursor, at most limit rooms. */
	struct store_room r3;
	CHECK_EQ_INT(store_room_get(s, "chat:3", true, &r3), 1);
	memset(&l, 0, sizeof(l));
	CHECK_EQ_INT(store_rooms_after(s, 0, 2, room_fn, &l), 2);
	CHECK_EQ_STR(l.names[0], "race:1");      /* created first */
	CHECK_EQ_STR(l.names[1], "global");
	memset(&l, 0, sizeof(l));
	CHECK_EQ_INT(store_rooms_after(s, c.id, 10, room_fn, &l), 1);
	CHECK_EQ_STR(l.names[0], "chat:3");
	memset(&l, 0, sizeof(l));
	CHECK_EQ_INT(store_rooms_after(s, r3.id, 10, room_fn, &l), 0);
	memset(&l, 0, sizeof(l));
	l.stop_after = 1;
	CHECK_EQ_INT(store_rooms_after(s, 0, 10, room_fn, &l), 1);
	store_close(s);
	db_cleanup();
}

/* ---- messages, history, retention ------------------------------------- */

static void test_history(void)
{
	db_setup();
	struct store *s = open_rw();
	struct store_room r, other;
	struct collect c;
	CHECK_EQ_INT(store_room_get(s, "race:7", true, &r), 1);
	CHECK_EQ_INT(store_room_get(s, "race:8", true, &other), 1);
	CHECK_EQ_INT(store_begin(s), 0);
	for (int i = 1; i <= 10; i++)
		CHECK_EQ_INT(add_msg(s, r.id, i, "2026-11-23T10:00:00.000Z", NULL, 0), 0);
	CHECK_EQ_INT(add_msg(s, other.id, 1, "2026-11-23T10:00:00.000Z", NULL, 0), 0);
	CHECK_EQ_INT(store_commit(s), 0);

	CHECK_EQ_INT(history(s, "race:7", 0, 100, &c, 0), 10);
	CHECK_EQ_INT(c.n, 10);
	for (int i = 0; i < 10; i++)
		CHECK_EQ_INT(c.seqs[i], i + 1);
	CHECK_EQ_STR(c.last_data, "{\"n\":10}");
	CHECK_EQ_STR(c.last_event, "tick");
	CHECK_EQ_STR(c.last_ts, "2026-11-23T10:00:00.000Z");

	/* Paging: after is exclusive, limit caps the page. */
	CHECK_EQ_INT(history(s, "race:7", 3, 4, &c, 0), 4);
	CHECK_EQ_INT(c.seqs[0], 4);
	CHECK_EQ_INT(c.seqs[3], 7);
	CHECK_EQ_INT(history(s, "race:7", 7, 4, &c, 0), 3);
	CHECK_EQ_INT(c.seqs[0], 8);
	CHECK_EQ_INT(history(s, "race:7", 10, 4, &c, 0), 0);
	CHECK_EQ_INT(history(s, "race:7", 0, 0, &c, 0), 0);

	/* The callback stops it; the row it stopped on counts as passed. */
	CHECK_EQ_INT(history(s, "race:7", 0, 100, &c, 3), 3);
	CHECK_EQ_INT(c.seqs[2], 3);
	/* The statement was reset: the next read starts over. */
	CHECK_EQ_INT(history(s, "race:7", 5, 100, &c, 0), 5);

	CHECK_EQ_INT(history(s, "nowhere", 0, 100, &c, 0), 0);
	CHECK_EQ_INT(history(s, "race:8", 0, 100, &c, 0), 1);

	/* Data is stored byte for byte, with its length, not parsed. */
	const char raw[] = "{ \"a\" : [1, 2.50, \"\\u00e9\"] }";
	CHECK_EQ_INT(store_message_add(s, other.id, 2, 2, "raw", raw, strlen(raw),
				       "2026-11-23T10:00:01.000Z", NULL, 0), 0);
	CHECK_EQ_INT(history(s, "race:8", 1, 10, &c, 0), 1);
	CHECK_EQ_STR(c.last_data, raw);

	/* A seq is stored once per room. */
	CHECK_EQ_INT(store_message_add(s, other.id, 2, 2, "dup", "1", 1, "x", NULL, 0), -1);
	CHECK(strstr(store_errmsg(s), "message_add") != NULL);
	store_close(s);
	db_cleanup();
}

static void test_prune(void)
{
	db_setup();
	struct store *s = open_rw();
	struct store_room r, other;
	struct collect c;
	CHECK_EQ_INT(store_room_get(s, "race:1", true, &r), 1);
	CHECK_EQ_INT(store_room_get(s, "race:2", true, &other), 1);
	CHECK_EQ_INT(store_first_seq(s, "race:1"), 0);
	CHECK_EQ_INT(store_first_seq(s, "nowhere"), 0);

	/* Twenty messages, one a minute from 10:00. */
	CHECK_EQ_INT(store_begin(s), 0);
	for (int i = 1; i <= 20; i++) {
		char ts[32];
		snprintf(ts, sizeof(ts), "2026-11-23T10:%02d:00.000Z", i - 1);
		CHECK_EQ_INT(add_msg(s, r.id, i, ts, NULL, 0), 0);
		CHECK_EQ_INT(add_msg(s, other.id, i, ts, NULL, 0), 0);
	}
	CHECK_EQ_INT(store_commit(s), 0);
	CHECK_EQ_INT(store_first_seq(s, "race:1"), 1);

	/* By seq, in steps of at most 3 rows. */
	CHECK_EQ_INT(store_begin(s), 0);
	CHECK_EQ_INT(store_prune_room(s, r.id, 7, NULL, 3), 3);
	CHECK_EQ_INT(store_first_seq(s, "race:1"), 4);
	CHECK_EQ_INT(store_prune_room(s, r.id, 7, NULL, 3), 3);
	CHECK_EQ_INT(store_prune_room(s, r.id, 7, NULL, 3), 1);
	CHECK_EQ_INT(store_prune_room(s, r.id, 7, NULL, 3), 0);
	CHECK_EQ_INT(store_commit(s), 0);
	CHECK_EQ_INT(store_first_seq(s, "race:1"), 8);
	CHECK_EQ_INT(history(s, "race:1", 0, 100, &c, 0), 13);
	CHECK_EQ_INT(c.seqs[0], 8);
	/* Other rooms are untouched; last_seq does not move back. */
	CHECK_EQ_INT(store_first_seq(s, "race:2"), 1);
	struct store_room now;
	CHECK_EQ_INT(store_room_get(s, "race:1", false, &now), 1);
	CHECK_EQ_INT(now.last_seq, 20);

	/* By age: before 10:12 means seqs 8..12 (10:07..10:11) go. */
	CHECK_EQ_INT(store_prune_room(s, r.id, 0, "2026-11-23T10:12", 2), 2);
	CHECK_EQ_INT(store_first_seq(s, "race:1"), 10);
	CHECK_EQ_INT(store_prune_room(s, r.id, 0, "2026-11-23T10:12", 10), 3);
	CHECK_EQ_INT(store_prune_room(s, r.id, 0, "2026-11-23T10:12", 10), 0);
	CHECK_EQ_INT(store_first_seq(s, "race:1"), 13);

	/* Either limit: seq <= 14 or older than 10:16 (seq <= 16). */
	CHECK_EQ_INT(store_prune_room(s, r.id, 14, "2026-11-23T10:16", 100), 4);
	CHECK_EQ_INT(store_first_seq(s, "race:1"), 17);
	CHECK_EQ_INT(store_prune_room(s, r.id, 0, NULL, 100), 0);
	CHECK_EQ_INT(store_prune_room(s, r.id, 100, NULL, 0), 0);

	/* Everything gone: first_seq is 0 again, last_seq still 20. */
	CHECK_EQ_INT(store_prune_room(s, r.id, 20, NULL, 100), 4);
	CHECK_EQ_INT(store_first_seq(s, "race:1"), 0);
	CHECK_EQ_INT(store_room_get(s, "race:1", false, &now), 1);
	CHECK_EQ_INT(now.last_seq, 20);
	CHECK_EQ_INT(history(s, "race:2", 0, 100, &c, 0), 20);
	store_close(s);
	db_cleanup();
}

static void test_idempotency(void)
{
	db_setup();
	struct store *s = open_rw();
	struct store_room r, other;
	int64_t t0 = now_ms(), seq = 0;
	CHECK_EQ_INT(store_room_get(s, "orders", true, &r), 1);
	CHECK_EQ_INT(store_room_get(s, "other", true, &other), 1);
	CHECK_EQ_INT(store_idem_find(s, r.id, "k1", t0, &seq), 0);

	CHECK_EQ_INT(store_begin(s), 0);
	CHECK_EQ_INT(add_msg(s, r.id, 1, "2026-11-23T10:00:00.000Z", "k1", t0), 0);
	/* Seen by later publishes of the same transaction. */
	CHECK_EQ_INT(store_idem_find(s, r.id, "k1", t0, &seq), 1);
	CHECK_EQ_INT(seq, 1);
	CHECK_EQ_INT(store_commit(s), 0);

	seq = 0;
	CHECK_EQ_INT(store_idem_find(s, r.id, "k1", t0 + STORE_IDEM_WINDOW_MS - 1, &seq), 1);
	CHECK_EQ_INT(seq, 1);
	CHECK_EQ_INT(store_idem_find(s, r.id, "k1", t0 + STORE_IDEM_WINDOW_MS + 1, &seq), 0);
	CHECK_EQ_INT(store_idem_find(s, other.id, "k1", t0, &seq), 0);
	CHECK_EQ_INT(store_idem_find(s, r.id, "k2", t0, &seq), 0);

	/* A key past the window is used again: it now names the new message. */
	int64_t t1 = t0 + STORE_IDEM_WINDOW_MS + 1;
	CHECK_EQ_INT(add_msg(s, r.id, 2, "2026-11-24T10:00:00.000Z", "k1", t1), 0);
	CHECK_EQ_INT(store_idem_find(s, r.id, "k1", t1, &seq), 1);
	CHECK_EQ_INT(seq, 2);

	/* Pruning keys removes those older than the window, of every room,
	 * within the limit, and leaves messages and fresh keys alone. */
	int64_t old = now_ms() - STORE_IDEM_WINDOW_MS - 60000;
	for (int i = 0; i < 3; i++) {
		char key[16];
		snprintf(key, sizeof(key), "old%d", i);
		CHECK_EQ_INT(add_msg(s, other.id, i + 1, "2026-11-22T10:00:00.000Z", key, old), 0);
	}
	CHECK_EQ_INT(add_msg(s, other.id, 4, "2026-11-22T10:00:00.000Z", "fresh", now_ms()), 0);
	CHECK_EQ_INT(store_idem_find(s, other.id, "old0", old, &seq), 1);
	/* Pruning messages leaves keys alone. */
	CHECK_EQ_INT(store_prune_room(s, other.id, 4, NULL, 10), 4);
	CHECK_EQ_INT(store_idem_find(s, other.id, "old0", old, &seq), 1);
	CHECK_EQ_INT(store_prune_idem(s, now_ms(), 0), 0);
	CHECK_EQ_INT(store_prune_idem(s, now_ms(), 2), 2);
	CHECK_EQ_INT(store_prune_idem(s, now_ms(), 2), 1);
	CHECK_EQ_INT(store_prune_idem(s, now_ms(), 2), 0);
	CHECK_EQ_INT(store_idem_find(s, other.id, "old0", old, &seq), 0);
	CHECK_EQ_INT(store_idem_find(s, other.id, "fresh", now_ms(), &seq), 1);
	CHECK_EQ_INT(seq, 4);
	/* Keys of the first room: k1 was written at t1, in the future of now. */
	CHECK_EQ_INT(store_idem_find(s, r.id, "k1", t1, &seq), 1);
	store_close(s);
	db_cleanup();
}

/* ---- transactions and readers ------------------------------------------ */

static void test_rollback(void)
{
	db_setup();
	struct store *s = open_rw();
	struct store_room r;
	struct collect c;
	int64_t seq;
	CHECK_EQ_INT(store_room_get(s, "race:1", true, &r), 1);
	CHECK_EQ_INT(store_begin(s), 0);
	CHECK(store_writable(s));
	CHECK_EQ_INT(add_msg(s, r.id, 1, "2026-11-23T10:00:00.000Z", "k", now_ms()), 0);
	int64_t id = store_notification_add(s, &(struct store_notification){
		.user = "alice", .type = "t", .created_at = "2026-11-23T10:00:00.000Z", .seq = 1 });
	CHECK(id > 0);
	CHECK_EQ_INT(history(s, "race:1", 0, 10, &c, 0), 1);
	store_rollback(s);

	CHECK_EQ_INT(history(s, "race:1", 0, 10, &c, 0), 0);
	CHECK_EQ_INT(store_room_get(s, "race:1", false, &r), 1);
	CHECK_EQ_INT(r.last_seq, 0);
	CHECK_EQ_INT(store_idem_find(s, r.id, "k", now_ms(), &seq), 0);
	CHECK_EQ_INT(store_unread_count(s, "alice"), 0);
	/* Rolling back with no transaction open is harmless. */
	store_rollback(s);
	CHECK_EQ_INT(store_commit(s), -1);
	CHECK_EQ_INT(store_begin(s), 0);
	CHECK_EQ_INT(store_begin(s), -1);         /* no nesting */
	store_rollback(s);
	store_close(s);
	db_cleanup();
}

static void test_wal_reader(void)
{
	db_setup();
	struct store *w = open_rw();
	struct store_room r;
	struct collect c;
	CHECK_EQ_INT(store_room_get(w, "race:1", true, &r), 1);
	CHECK_EQ_INT(store_begin(w), 0);
	CHECK_EQ_INT(add_msg(w, r.id, 1, "2026-11-23T10:00:00.000Z", NULL, 0), 0);
	CHECK_EQ_INT(store_commit(w), 0);

	struct store *ro = open_ro();
	CHECK(ro != NULL);
	if (!ro) {
		store_close(w);
		db_cleanup();
		return;
	}
	/* The hub holds a write transaction: the reader is not blocked, sees
	 * what was committed and nothing of what is not. */
	CHECK_EQ_INT(store_begin(w), 0);
	CHECK_EQ_INT(add_msg(w, r.id, 2, "2026-11-23T10:00:01.000Z", NULL, 0), 0);
	CHECK_EQ_INT(store_notification_add(w, &(struct store_notification){
		.user = "bob", .type = "t", .created_at = "2026-11-23T10:00:01.000Z" }) > 0, 1);
	int64_t t0 = mono_ms();
	CHECK_EQ_INT(history(ro, "race:1", 0, 10, &c, 0), 1);
	CHECK_EQ_INT(c.seqs[0], 1);
	CHECK_EQ_INT(store_first_seq(ro, "race:1"), 1);
	CHECK_EQ_INT(store_unread_count(ro, "bob"), 0);
	struct store_room rr;
	CHECK_EQ_INT(store_room_get(ro, "race:1", false, &rr), 1);
	CHECK_EQ_INT(rr.last_seq, 1);
	CHECK_EQ_STR(rr.epoch, r.epoch);
	CHECK(mono_ms() - t0 < 1000);
	CHECK_EQ_INT(store_commit(w), 0);

	CHECK_EQ_INT(history(ro, "race:1", 0, 10, &c, 0), 2);
	CHECK_EQ_INT(store_unread_count(ro, "bob"), 1);
	CHECK_EQ_INT(store_room_get(ro, "race:1", false, &rr), 1);
	CHECK_EQ_INT(rr.last_seq, 2);
	store_close(ro);
	store_close(w);
	db_cleanup();
}

static void test_writable(void)
{
	db_setup();
	struct store *s = open_rw();
	CHECK(store_writable(s));
	/* Another writer (an operator's shell, say) holds the lock: the health
	 * check answers at once rather than after the busy timeout. */
	sqlite3 *db;
	CHECK_EQ_INT(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
	CHECK_EQ_INT(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
	int64_t t0 = mono_ms();
	CHECK(!store_writable(s));
	CHECK(mono_ms() - t0 < 1000);
	sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	sqlite3_close(db);
	CHECK(store_writable(s));
	/* The check leaves no transaction behind. */
	CHECK_EQ_INT(store_begin(s), 0);
	CHECK_EQ_INT(store_commit(s), 0);
	store_close(s);
	db_cleanup();
}

/* ---- notifications ----------------------------------------------------- */

static int64_t notify(struct store *s, const char *user, const char *title, const char *data)
{
	return store_notification_add(s, &(struct store_notification){
		.user = user, .type = "order.shipped", .title = title,
		.message = title ? "details" : NULL, .data = data,
		.action_url = title ? "https://example.com/o/1" : NULL,
		.created_at = "2026-11-23T10:00:00.000Z", .seq = 7 });
}

static int64_t item_id(json_t *list, size_t i)
{
	return json_integer_value(json_object_get(json_array_get(list, i), "id"));
}

static void test_notifications(void)
{
	db_setup();
	struct store *s = open_rw();
	int64_t ids[6];
	CHECK_EQ_INT(store_begin(s), 0);
	ids[0] = notify(s, "alice", "first", "{\"order\":1}");
	ids[1] = notify(s, "alice", NULL, NULL);
	ids[2] = notify(s, "bob", "bob's", "[1,2]");
	ids[3] = notify(s, "alice", "third", "\"text\"");
	ids[4] = notify(s, "alice", "fourth", "not json");
	ids[5] = notify(s, "alice", "fifth", "{}");
	CHECK_EQ_INT(store_commit(s), 0);
	for (int i = 0; i < 6; i++)
		CHECK(ids[i] > 0);
	CHECK(ids[5] > ids[0]);
	CHECK_EQ_INT(store_notification_add(s, &(struct store_notification){ .type = "x",
		.created_at = "2026-11-23T10:00:00.000Z" }), -1);  /* no user */

	struct store *ro = open_ro();
	CHECK(ro != NULL);
	CHECK_EQ_INT(store_unread_count(ro, "alice"), 5);
	CHECK_EQ_INT(store_unread_count(ro, "bob"), 1);
	CHECK_EQ_INT(store_unread_count(ro, "nobody"), 0);

	/* Newest first; every field present. */
	json_t *l = store_notifications_list(ro, "alice", false, 50, 0);
	CHECK(json_is_array(l));
	CHECK_EQ_INT(json_array_size(l), 5);
	CHECK_EQ_INT(item_id(l, 0), ids[5]);
	CHECK_EQ_INT(item_id(l, 4), ids[0]);
	json_t *o = json_array_get(l, 4);
	CHECK_EQ_STR(json_string_value(json_object_get(o, "user")), "alice");
	CHECK_EQ_STR(json_string_value(json_object_get(o, "type")), "order.shipped");
	CHECK_EQ_STR(json_string_value(json_object_get(o, "title")), "first");
	CHECK_EQ_STR(json_string_value(json_object_get(o, "message")), "details");
	CHECK_EQ_STR(json_string_value(json_object_get(o, "action_url")), "https://example.com/o/1");
	CHECK_EQ_STR(json_string_value(json_object_get(o, "created_at")), "2026-11-23T10:00:00.000Z");
	CHECK_EQ_INT(json_integer_value(json_object_get(json_object_get(o, "data"), "order")), 1);
	CHECK(json_is_false(json_object_get(o, "read")));
	CHECK(json_is_null(json_object_get(o, "read_at")));
	CHECK_EQ_INT(json_integer_value(json_object_get(o, "seq")), 7);
	o = json_array_get(l, 3);           /* the one with no optional fields */
	CHECK(json_is_null(json_object_get(o, "title")));
	CHECK(json_is_null(json_object_get(o, "message")));
	CHECK(json_is_null(json_object_get(o, "data")));
	CHECK(json_is_null(json_object_get(o, "action_url")));
	CHECK_EQ_STR(json_string_value(json_object_get(json_array_get(l, 2), "data")), "text");
	CHECK(json_is_null(json_object_get(json_array_get(l, 1), "data")));  /* not JSON */
	CHECK_EQ_INT(json_object_size(json_array_get(l, 0)), 11);
	json_decref(l);

	/* Limit and before page through. */
	l = store_notifications_list(ro, "alice", false, 2, 0);
	CHECK_EQ_INT(json_array_size(l), 2);
	int64_t next = item_id(l, 1);
	json_decref(l);
	l = store_notifications_list(ro, "alice", false, 2, next);
	CHECK_EQ_INT(json_array_size(l), 2);
	CHECK_EQ_INT(item_id(l, 0), ids[3]);
	CHECK_EQ_INT(item_id(l, 1), ids[1]);
	json_decref(l);
	l = store_notifications_list(ro, "alice", false, 2, ids[0]);
	CHECK_EQ_INT(json_array_size(l), 0);
	json_decref(l);

	/* Read by ids: only alice's unread rows change; bob's id, an unknown
	 * id and a repeat count for nothing. */
	int64_t mark[] = { ids[0], ids[3], ids[2], 999999, ids[0] };
	CHECK_EQ_INT(store_notifications_read(s, "alice", mark, ARRAY_SIZE(mark),
					      "2026-11-23T11:00:00.000Z"), 2);
	CHECK_EQ_INT(store_notifications_read(s, "alice", mark, 2, "2026-11-23T12:00:00.000Z"), 0);
	CHECK_EQ_INT(store_notifications_read(s, "alice", mark, 0, "2026-11-23T12:00:00.000Z"), 0);
	CHECK_EQ_INT(store_unread_count(ro, "alice"), 3);
	CHECK_EQ_INT(store_unread_count(ro, "bob"), 1);

	l = store_notifications_list(ro, "alice", true, 50, 0);
	CHECK_EQ_INT(json_array_size(l), 3);
	CHECK_EQ_INT(item_id(l, 0), ids[5]);
	CHECK_EQ_INT(item_id(l, 1), ids[4]);
	CHECK_EQ_INT(item_id(l, 2), ids[1]);
	json_decref(l);
	l = store_notifications_list(ro, "alice", true, 1, ids[4]);
	CHECK_EQ_INT(json_array_size(l), 1);
	CHECK_EQ_INT(item_id(l, 0), ids[1]);
	json_decref(l);
	l = store_notifications_list(ro, "alice", false, 50, 0);
	o = json_array_get(l, 4);
	CHECK(json_is_true(json_object_get(o, "read")));
	CHECK_EQ_STR(json_string_value(json_object_get(o, "read_at")), "2026-11-23T11:00:00.000Z");
	json_decref(l);

	/* Inside the hub's transaction too, and undone with it. */
	CHECK_EQ_INT(store_begin(s), 0);
	CHECK_EQ_INT(store_notifications_read(s, "alice", &ids[1], 1, "2026-11-23T12:00:00.000Z"), 1);
	CHECK_EQ_INT(store_unread_count(s, "alice"), 2);
	store_rollback(s);
	CHECK_EQ_INT(store_unread_count(s, "alice"), 3);

	/* All at once. */
	CHECK_EQ_INT(store_notifications_read(s, "alice", NULL, 0, "2026-11-23T13:00:00.000Z"), 3);
	CHECK_EQ_INT(store_notifications_read(s, "alice", NULL, 0, "2026-11-23T13:00:00.000Z"), 0);
	CHECK_EQ_INT(store_unread_count(ro, "alice"), 0);
	CHECK_EQ_INT(store_unread_count(ro, "bob"), 1);
	l = store_notifications_list(ro, "alice", true, 50, 0);
	CHECK_EQ_INT(json_array_size(l), 0);
	json_decref(l);

	/* Readers cannot mark. */
	CHECK_EQ_INT(store_notifications_read(ro, "bob", NULL, 0, "2026-11-23T13:00:00.000Z"), -1);
	CHECK_EQ_INT(store_notifications_read(ro, "bob", &ids[2], 1, "2026-11-23T13:00:00.000Z"), -1);
	store_close(ro);
	store_close(s);
	db_cleanup();
}

TEST_MAIN("store",
	  TEST(test_migrate),
	  TEST(test_readonly_open),
	  TEST(test_newer_version),
	  TEST(test_durability_full),
	  TEST(test_rooms),
	  TEST(test_history),
	  TEST(test_prune),
	  TEST(test_idempotency),
	  TEST(test_rollback),
	  TEST(test_wal_reader),
	  TEST(test_writable),
	  TEST(test_notifications))
