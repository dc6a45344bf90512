/* fuzz_session.c -- libFuzzer target for the client protocol through the
 * session layer: session.c, room.c and conn.c of a worker on a real socket. */

/* Each input is a connection's life: a socket upgraded to /ws on conn.c's
 * path, then the input's NUL-separated parts as client messages (one part
 * when there is no NUL), handed to session_message as conn.c does with a
 * decoded frame (text when it is UTF-8, else binary), while the loop turns
 * and the client side is drained; then the connection closes. worker.c is
 * stood in for here, and the hub with it: room joins get the room's state
 * from a small database made once (race:1 has seqs 1..30 in epoch
 * 00000000000000e1), publishes are delivered to the room, and requests are
 * answered in turn with a success, a refusal or 503. The input's length
 * picks the rarer worlds: one where the hub is down, one where anonymous
 * connections must authenticate first. */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <ev.h>
#include <sqlite3.h>

#include "config.h"
#include "conn.h"
#include "eio.h"
#include "ipc.h"
#include "log.h"
#include "proto.h"
#include "room.h"
#include "session.h"
#include "sio.h"
#include "store.h"
#include "utf8.h"
#include "util.h"
#include "worker.h"

#define MESSAGES_MAX 64
#define TURNS 6                /* loop turns after each message */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct worker worker;

/* A broken expectation of the target or of the code under test: says where. */
__attribute__((noreturn)) static void fail(int line)
{
	fprintf(stderr, "fuzz_session.c:%d: check failed (errno: %s)\n", line, strerror(errno));
	abort();
}

/* ---- the hub, stood in for ---------------------------------------------------------- */

struct pending {
	uint64_t id, conn_id, tag;
	worker_reply_fn fn;
};
static struct pending *pending;
static size_t npending, cappending;
static unsigned replies;          /* picks the next reply */

struct joined {
	char room[ROOM_MAX + 1];
};
static struct joined *joins;      /* room joins the hub has yet to answer */
static size_t njoins, capjoins;

struct published {
	uint64_t req;
	bool committed;           /* the hub said 200 */
	char room[ROOM_MAX + 1];
	char event[130];
	char *data;
	size_t len;
};
static struct published *pubs;    /* publishes the hub has yet to deliver */
static size_t npubs, cappubs;

static void read_publish(struct ipc_reader *r)
{
	xgrow(&pubs, &cappubs, npubs + 1, sizeof(*pubs));
	struct published *m = &pubs[npubs];
	m->req = ipc_get_u64(r);
	m->committed = false;
	if (ipc_get_u32(r) != 1)
		fail(__LINE__);          /* a client publishes to one room */
	ipc_get_str(r, m->room, sizeof(m->room));
	ipc_get_str(r, m->event, sizeof(m->event));
	const char *data = ipc_get_bytes(r, &m->len);
	size_t idem;
	ipc_get_bytes(r, &idem);
	ipc_get_u8(r);
	if (!ipc_reader_done(r))
		fail(__LINE__);
	m->data = xmalloc(m->len + 1);
	memcpy(m->data, data, m->len);
	npubs++;
}

int worker_hub_send(struct buf *b)
{
	if (!worker.hub.up) {
		buf_reset(b);
		return -1;
	}
	size_t off = 0;
	for (;;) {
		uint16_t type;
		const uint8_t *payload;
		uint32_t plen;
		long n = ipc_frame_next((const uint8_t *)b->data + off, b->len - off, &type,
					&payload, &plen);
		if (n < 0)
			fail(__LINE__);       /* the worker framed something invalid */
		if (n == 0)
			break;
		off += (size_t)n;
		if (type == IPC_PUBLISH) {
			struct ipc_reader r;
			ipc_reader_init(&r, payload, plen);
			read_publish(&r);
		} else if (type == IPC_ROOM_JOIN) {
			struct ipc_reader r;
			ipc_reader_init(&r, payload, plen);
			xgrow(&joins, &capjoins, njoins + 1, sizeof(*joins));
			ipc_get_str(&r, joins[njoins].room, sizeof(joins[njoins].room));
			if (!ipc_reader_done(&r))
				fail(__LINE__);
			njoins++;
		}
	}
	if (off != b->len)
		fail(__LINE__);
	buf_reset(b);
	return 0;
}

uint64_t worker_expect_reply(struct conn *c, uint64_t tag, worker_reply_fn fn)
{
	xgrow(&pending, &cappending, npending + 1, sizeof(*pending));
	uint64_t id = ++worker.next_req;
	pending[npending++] = (struct pending){ id, c ? c->id : 0, tag, fn };
	return id;
}

/* The hub's view of the rooms this input touched: the database's, then
 * what was committed since (forgotten after each input). */
struct hub_room {
	char name[ROOM_MAX + 1];
	char epoch[STORE_EPOCH_LEN + 1];
	int64_t last_seq;
};
static struct hub_room *hub_rooms;
static size_t nhub_rooms, caphub_rooms;

static struct hub_room *hub_room(const char *name)
{
	for (size_t i = 0; i < nhub_rooms; i++)
		if (strcmp(hub_rooms[i].name, name) == 0)
			return &hub_rooms[i];
	xgrow(&hub_rooms, &caphub_rooms, nhub_rooms + 1, sizeof(*hub_rooms));
	struct hub_room *hr = &hub_rooms[nhub_rooms++];
	struct store_room sr = { 0 };
	if (store_room_get(worker.reader, name, false, &sr) != 1)
		sr = (struct store_room){ 0 };
	snprintf(hr->name, sizeof(hr->name), "%s", name);
	memcpy(hr->epoch, sr.epoch, sizeof(hr->epoch));
	hr->last_seq = sr.last_seq;
	return hr;
}

/* Delivers a client's publish to the room as its next seq, as the hub does
 * once it is committed. */
static void deliver(struct published *m)
{
	struct hub_room *hr = hub_room(m->room);
	char ts[UTIL_TS_LEN + 1];
	ts_format(now_ms(), ts);
	struct buf b = { 0 }, ev = { 0 };
	int64_t seq = ++hr->last_seq;
	if (!hr->epoch[0])
		snprintf(hr->epoch, sizeof(hr->epoch), "00000000000000f0");
	const char *epoch = hr->epoch;
	proto_event(&b, m->room, seq, epoch, m->event, m->data, m->len, ts);
	buf_append_json_str(&ev, m->event, strlen(m->event));
	struct room_msg rm = { seq, seq, epoch, b.data, b.len, ev.data, ev.len, m->data,
			       m->len, ts };
	room_on_deliver(m->room, &rm);
	buf_free(&b);
	buf_free(&ev);
}

/* Answers what the hub was asked: room states from the database, then each
 * request (to its connection, or to NULL when closing), then deliveries. */
static void hub_answer(bool closing)
{
	while (njoins) {
		struct joined j = joins[--njoins];
		struct hub_room *hr = hub_room(j.room);
		room_on_state(hr->name, hr->epoch, hr->last_seq);
	}
	static const struct {
		int status;
		const char *json;
	} answers[] = {
		{ 200, "{\"room\":\"race:1\",\"seq\":31,\"epoch\":\"e0\",\"count\":2,\"id\":\"wf_1\","
		       "\"status\":\"in_progress\",\"version\":2}" },
		{ 409, "{\"error\":{\"code\":\"conflict\",\"message\":\"version mismatch\"}}" },
		{ 403, "{\"error\":{\"code\":\"forbidden\",\"message\":\"not allowed\"}}" },
		{ 503, "{\"error\":{\"code\":\"unavailable\",\"message\":\"hub unavailable\"}}" },
		{ 500, "{}" },
	};
	while (npending) {
		struct pending p = pending[--npending];
		struct conn *c = closing ? NULL : map_get_u64(&worker.conns, p.conn_id);
		unsigned k = replies++ % ARRAY_SIZE(answers);
		for (size_t i = 0; i < npubs; i++)
			if (pubs[i].req == p.id)
				pubs[i].committed = answers[k].status == 200;
		p.fn(c, p.tag, answers[k].status, answers[k].json, strlen(answers[k].json));
	}
	for (size_t i = 0; i < npubs; i++) {
		if (pubs[i].committed)
			deliver(&pubs[i]);
		free(pubs[i].data);
	}
	npubs = 0;
}

/* ---- set-up, once ------------------------------------------------------------------- */

static char dir[64];
static int lfd = -1;
static struct sockaddr_in laddr;

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	if (!f || fputs(text, f) < 0 || fclose(f) != 0)
		fail(__LINE__);
}

static void cleanup(void)
{
	static const char *const names[] = { "herald.conf", "herald.db", "herald.db-wal",
					     "herald.db-shm" };
	char path[128];
	if (worker.reader)
		store_close(worker.reader);
	worker.reader = NULL;
	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		unlink(path);
	}
	rmdir(dir);
}

/* A database with history in race:1 and notifications for alice. */
static void make_store(const char *path)
{
	char err[256];
	struct store *s = store_open(path, false, false, err, sizeof(err));
	if (!s || store_begin(s) < 0)
		fail(__LINE__);
	struct store_room sr;
	if (store_room_get(s, "race:1", true, &sr) != 1)
		fail(__LINE__);
	static const char data[] = "{\"odds\":[1.5,2.25],\"runner\":\"x\"}";
	for (int64_t seq = 1; seq <= 30; seq++)
		if (store_message_add(s, sr.id, seq, seq, "odds", data, sizeof(data) - 1,
				      "2026-01-01T00:00:00.000Z", NULL, now_ms()) < 0)
			fail(__LINE__);
	if (store_room_set_seq(s, sr.id, 30, 30) < 0 || store_room_get(s, "chat:1", true, &sr) != 1)
		fail(__LINE__);
	for (int i = 0; i < 3; i++) {
		struct store_notification n = { "alice", "note", "Hello", NULL, "{}", NULL,
						"2026-01-01T00:00:00.000Z", 0 };
		if (store_notification_add(s, &n) < 0)
			fail(__LINE__);
	}
	if (store_commit(s) < 0)
		fail(__LINE__);
	store_close(s);
	/* Epochs are random: fixed ones let inputs resume where a seed did. */
	sqlite3 *db;
	if (sqlite3_open(path, &db) != SQLITE_OK ||
	    sqlite3_exec(db, "UPDATE rooms SET epoch = '00000000000000e1' WHERE name = 'race:1';"
			 "UPDATE rooms SET epoch = '00000000000000e2' WHERE name = 'chat:1';",
			 NULL, NULL, NULL) != SQLITE_OK || sqlite3_close(db) != SQLITE_OK)
		fail(__LINE__);
}

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/herald-fuzz-XXXXXX");
	if (!mkdtemp(dir))
		fail(__LINE__);
	atexit(cleanup);
	char conf[128], db[128], text[1024];
	snprintf(conf, sizeof(conf), "%s/herald.conf", dir);
	snprintf(db, sizeof(db), "%s/herald.db", dir);
	snprintf(text, sizeof(text),
		 "database = %s\n"
		 "jwt_secret = fuzz-secret\n"
		 "allow_anonymous = yes\n"
		 "log_level = error\n"
		 "max_rooms_per_connection = 8\n"
		 "rate_per_sec = 10\n"
		 "rate_burst = 24\n"
		 "replay_limit = 20\n"
		 "max_json_depth = 16\n"
		 "send_queue_max = 64k\n"
		 "[namespace race]\nsubscribe = public\npublish = public\n"
		 "[namespace chat]\nsubscribe = authenticated\npublish = authenticated\n"
		 "[namespace order]\nsubscribe = owner, claim\n"
		 "[namespace desk]\nsubscribe = role:ops\npublish = role:ops\n", db);
	write_file(conf, text);
	make_store(db);

	static struct config cfg;
	char err[256];
	if (config_load(&cfg, conf, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		fail(__LINE__);
	}
	log_init("fuzz", LOG_ERROR, NULL);
	static struct proc_ctx ctx;
	ctx.cfg = &cfg;
	snprintf(ctx.hub_name, sizeof(ctx.hub_name), "herald-fuzz-%d-hub", (int)getpid());
	worker.ctx = &ctx;
	worker.cfg = &cfg;
	worker.loop = ev_default_loop(0);
	worker.started_ms = now_ms();
	worker.next_conn_id = 1;
	worker.reader = store_open(db, true, false, err, sizeof(err));
	if (!worker.reader)
		fail(__LINE__);
	room_init();
	eio_init();
	sio_init();

	/* Connections are real TCP sockets: conn.c takes the peer's address. */
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	laddr = (struct sockaddr_in){ .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(laddr);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&laddr, sizeof(laddr)) < 0 ||
	    listen(lfd, 16) < 0 || getsockname(lfd, (struct sockaddr *)&laddr, &len) < 0)
		fail(__LINE__);
}

/* ---- one connection ------------------------------------------------------------------ */

static void drain(int fd)
{
	char scratch[65536];
	ssize_t n;
	while ((n = read(fd, scratch, sizeof(scratch))) > 0 || (n < 0 && errno == EINTR))
		;
}

/* Lets the worker run: hub answers, output written, idle replay steps. */
static void turn(int client, bool closing)
{
	for (int i = 0; i < TURNS; i++) {
		hub_answer(closing);
		sio_flush();
		eio_flush();
		conn_flush_all();
		ev_run(worker.loop, EVRUN_NOWAIT);
		drain(client);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (lfd < 0)
		setup();
	/* Now and then the hub is away, or a connection must authenticate. */
	worker.hub.up = size % 16 != 15;
	worker.cfg->allow_anonymous = size % 8 != 6;
	worker.next_conn_id = 1;
	replies = 0;
	nhub_rooms = 0;

	/* (libFuzzer's timers interrupt calls: an interrupted connect goes on
	 * by itself, and accept waits for it) */
	int client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), fd;
	if (client < 0 ||
	    (connect(client, (struct sockaddr *)&laddr, sizeof(laddr)) < 0 && errno != EINTR))
		fail(__LINE__);
	while ((fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) < 0 && errno == EINTR)
		;
	if (fd < 0 || fcntl(client, F_SETFL, O_NONBLOCK) < 0)
		fail(__LINE__);
	static const char upgrade[] =
		"GET /ws HTTP/1.1\r\nHost: fuzz\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
		"Sec-WebSocket-Protocol: herald.v1\r\n\r\n";
	conn_adopt(fd, upgrade, sizeof(upgrade) - 1);
	struct conn *c = conn_first();
	if (!c || c->state != CONN_WS || !c->session || conn_count() != 1)
		fail(__LINE__);
	uint64_t id = c->id;
	turn(client, false);

	const char *p = (const char *)data, *end = p + size;
	for (int k = 0; k < MESSAGES_MAX; k++) {
		const char *nul = memchr(p, '\0', (size_t)(end - p));
		size_t n = nul ? (size_t)(nul - p) : (size_t)(end - p);
		c = map_get_u64(&worker.conns, id);
		if (!c || c->state != CONN_WS)
			break;
		bool text = utf8_valid((const uint8_t *)p, n);
		session_message(c, text ? WS_OP_TEXT : WS_OP_BINARY, p, n);
		turn(client, false);
		if (!nul)
			break;
		p = nul + 1;
	}

	/* The hub goes and comes back: rooms and the connection are reported
	 * again, and rooms catch up on what was committed meanwhile. */
	if (worker.hub.up) {
		room_hub_lost();
		if (nhub_rooms) {
			hub_rooms[0].last_seq++;
			if (!hub_rooms[0].epoch[0])
				snprintf(hub_rooms[0].epoch, sizeof(hub_rooms[0].epoch), "00000000000000f0");
		}
		room_rejoin_all();
		session_hub_back();
		turn(client, false);
	}
	c = map_get_u64(&worker.conns, id);
	if (c)
		conn_close(c, "fuzz input done");
	turn(client, true);
	close(client);
	if (conn_count() != 0 || room_count() != 0 || npending || njoins || npubs)
		fail(__LINE__);
	return 0;
}
