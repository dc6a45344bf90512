/* dashboard.c -- the dashboard's server side on the admin listener: its
 * static files, served read-only from dashboard_dir with a strict
 * Content-Security-Policy, and its live stream of server-sent events. */
#include "dashboard.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <jansson.h>

#include "acl.h"
#include "log.h"
#include "store.h"
#include "util.h"
#include "worker.h"

#define FILE_MAX (1024 * 1024)        /* larger files are not the dashboard's */
#define NAME_MAX_LEN 64
#define TICK 0.5                      /* seconds between stream ticks */
#define STREAM_QUEUE_MAX (512 * 1024) /* bytes queued to a stream before it is closed */
#define STREAM_BACKLOG 50             /* a room's last messages sent when a stream opens */
#define STREAM_BATCH 200              /* messages read per tick */

/* Every dashboard response: nothing inline, nothing from elsewhere. */
static const char dashboard_csp[] =
	"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
	"connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
	"form-action 'none'; frame-ancestors 'none'";

static const char dashboard_headers[] =
	"X-Content-Type-Options: nosniff\r\nX-Frame-Options: DENY\r\n"
	"Referrer-Policy: no-referrer\r\n";

/* ---- static files ----------------------------------------------------------- */

static const struct { const char *ext, *type; } dashboard_types[] = {
	{ ".html", "text/html; charset=utf-8" },
	{ ".css",  "text/css; charset=utf-8" },
	{ ".js",   "text/javascript; charset=utf-8" },
	{ ".mjs",  "text/javascript; charset=utf-8" },
	{ ".svg",  "image/svg+xml" },
	{ ".png",  "image/png" },
	{ ".ico",  "image/x-icon" },
	{ ".json", "application/json" },
};

/* The content type of a file name the dashboard may serve, or NULL: a flat
 * name of [A-Za-z0-9_.-] not starting with a dot, with a known extension.
 * No slash, no dot-dot, no escapes: nothing outside dashboard_dir. */
static const char *dashboard_type(const char *name, size_t n)
{
	if (n == 0 || n > NAME_MAX_LEN || name[0] == '.')
		return NULL;
	for (size_t i = 0; i < n; i++) {
		char ch = name[i];
		bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
			  (ch >= '0' && ch <= '9') || ch == '_' || ch == '-' || ch == '.';
		if (!ok || (ch == '.' && i + 1 < n && name[i + 1] == '.'))
			return NULL;
	}
	for (size_t i = 0; i < ARRAY_SIZE(dashboard_types); i++) {
		size_t el = strlen(dashboard_types[i].ext);
		if (n > el && memcmp(name + n - el, dashboard_types[i].ext, el) == 0)
			return dashboard_types[i].type;
	}
	return NULL;
}

static void dashboard_fail(struct conn *c, int status, const char *code, const char *message)
{
	struct buf out = { 0 };
	http_error(&out, status, code, message, conn_http_keep_alive(c));
	conn_http_reply(c, &out);
	buf_free(&out);
}

/* Reads dir/name into *body (at most FILE_MAX bytes) with its stat.
 * Returns 0, or -1 when it is missing, not a regular file, or too big. */
static int dashboard_read(const char *name, size_t n, struct buf *body, struct stat *st)
{
	char path[4096];
	int len = snprintf(path, sizeof(path), "%s/%.*s", worker.cfg->dashboard_dir, (int)n, name);
	if (len < 0 || (size_t)len >= sizeof(path))
		return -1;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0)
		return -1;
	if (fstat(fd, st) < 0 || !S_ISREG(st->st_mode) || st->st_size > FILE_MAX)
		goto fail;
	buf_reserve(body, (size_t)st->st_size + 1);
	while (body->len < (size_t)st->st_size) {
		ssize_t r = read(fd, body->data + body->len, (size_t)st->st_size - body->len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			goto fail;
		body->len += (size_t)r;
	}
	close(fd);
	return 0;
fail:
	close(fd);
	return -1;
}

void dashboard_static(struct conn *c, const struct http_request *req)
{
	const char *name = "index.html";
	size_t n = strlen(name);
	if (req->path_len > 8 && memcmp(req->path, "/assets/", 8) == 0) {
		name = req->path + 8;
		n = req->path_len - 8;
	} else if (req->path_len != 1) {
		dashboard_fail(c, 404, "not_found", "no such route");
		return;
	}
	if (req->method_len != 3 || memcmp(req->method, "GET", 3) != 0) {
		dashboard_fail(c, 405, "method_not_allowed", "GET only");
		return;
	}
	const char *type = dashboard_type(name, n);
	struct buf body = { 0 };
	struct stat st;
	if (!type || dashboard_read(name, n, &body, &st) < 0) {
		buf_free(&body);
		dashboard_fail(c, 404, "not_found", "no such file");
		return;
	}
	/* The files change when herald is upgraded: revalidate every time, and
	 * let the ETag (size and modification time) make that cheap. */
	char etag[64];
	snprintf(etag, sizeof(etag), "\"%llx-%llx\"", (unsigned long long)st.st_size,
		 (unsigned long long)st.st_mtim.tv_sec * 1000000000ULL +
		 (unsigned long long)st.st_mtim.tv_nsec);
	const struct http_header *inm = http_find_header(req, "If-None-Match");
	bool fresh = inm && inm->value_len == strlen(etag) && memcmp(inm->value, etag, inm->value_len) == 0;
	struct buf out = { 0 };
	buf_printf(&out, "HTTP/1.1 %d %s\r\n", fresh ? 304 : 200, fresh ? "Not Modified" : "OK");
	if (!fresh)
		buf_printf(&out, "Content-Type: %s\r\nContent-Length: %zu\r\n", type, body.len);
	buf_printf(&out, "ETag: %s\r\nCache-Control: no-cache\r\nContent-Security-Policy: %s\r\n%s",
		   etag, dashboard_csp, dashboard_headers);
	if (!conn_http_keep_alive(c))
		buf_appends(&out, "Connection: close\r\n");
	buf_appends(&out, "\r\n");
	if (!fresh)
		buf_append(&out, body.data, body.len);
	conn_http_reply(c, &out);
	buf_free(&out);
	buf_free(&body);
}

/* ---- the live stream --------------------------------------------------------- */

struct stream {
	uint64_t conn_id;
	char room[ROOM_MAX + 1];      /* empty: figures only */
	int64_t seq;                  /* last message of room sent */
	bool stats_pending;           /* a stats request is with the hub */
	unsigned ticks;
};

static struct stream *streams[DASHBOARD_STREAMS_MAX];
static ev_timer stream_timer;

static struct stream *stream_find(uint64_t conn_id)
{
	for (size_t i = 0; i < DASHBOARD_STREAMS_MAX; i++)
		if (streams[i] && streams[i]->conn_id == conn_id)
			return streams[i];
	return NULL;
}

/* Queues one event; data is JSON on one line (line breaks, which JSON allows
 * only as whitespace, become spaces so the event stays one data line). */
static void stream_event(struct conn *c, const char *name, const char *data, size_t len)
{
	struct buf b = { 0 };
	buf_printf(&b, "event: %s\ndata: ", name);
	size_t at = b.len;
	buf_append(&b, data, len);
	for (size_t i = at; i < b.len; i++)
		if (b.data[i] == '\n' || b.data[i] == '\r')
			b.data[i] = ' ';
	buf_appends(&b, "\n\n");
	conn_send_bytes(c, b.data, b.len);
	buf_free(&b);
}

static void stream_stats_reply(struct conn *c, uint64_t tag, int status, const char *json,
			       size_t len)
{
	struct stream *s = stream_find(tag);
	if (s)
		s->stats_pending = false;
	if (!c || c->state != CONN_STREAM)
		return;
	bool hub = worker.hub.up && mono_ms() - worker.hubstat.at < 2000;
	json_t *stats = status == 200 ? json_loadb(json, len, 0, NULL) : NULL;
	/* Per-user counts can be large and the page does not show them. */
	if (stats)
		json_object_del(stats, "user_connections");
	json_t *ev = json_pack("{s:I, s:i, s:s, s:s, s:o}", "ts", (json_int_t)now_ms(),
			       "worker", worker.slot + 1, "hub", hub ? "up" : "down",
			       "db", hub && worker.hubstat.db_writable ? "writable" : "unavailable",
			       "stats", stats ? stats : json_null());
	char *text = json_dumps(ev, JSON_COMPACT);
	stream_event(c, "stats", text, strlen(text));
	free(text);
	json_decref(ev);
}

static int stream_row(const struct store_message *m, void *arg)
{
	struct stream *s = ((void **)arg)[0];
	struct conn *c = ((void **)arg)[1];
	struct buf b = { 0 };
	buf_appends(&b, "{\"room\":");
	buf_append_json_str(&b, s->room, strlen(s->room));
	buf_printf(&b, ",\"seq\":%lld,\"event\":", (long long)m->seq);
	buf_append_json_str(&b, m->event, strlen(m->event));
	buf_appends(&b, ",\"data\":");
	buf_append(&b, m->data, m->data_len);
	buf_printf(&b, ",\"ts\":\"%s\"}", m->ts);
	stream_event(c, "message", b.data, b.len);
	buf_free(&b);
	s->seq = m->seq;
	return 0;
}

static void stream_room(struct stream *s, struct conn *c)
{
	void *arg[2] = { s, c };
	if (store_history(worker.reader, s->room, s->seq, STREAM_BATCH, stream_row, arg) < 0)
		log_debug("event=stream_history_failed room=%s", s->room);
}

static void stream_free(size_t i)
{
	free(streams[i]);
	streams[i] = NULL;
}

static void stream_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
	size_t live = 0;
	for (size_t i = 0; i < DASHBOARD_STREAMS_MAX; i++) {
		struct stream *s = streams[i];
		if (!s)
			continue;
		struct conn *c = map_get_u64(&worker.conns, s->conn_id);
		if (!c || c->state != CONN_STREAM) {
			stream_free(i);
			continue;
		}
		/* A reader that does not keep up is not worth a growing queue. */
		if (c->out_bytes > STREAM_QUEUE_MAX) {
			conn_close(c, "stream reader too slow");
			stream_free(i);
			continue;
		}
		live++;
		if (s->room[0])
			stream_room(s, c);
		if (s->ticks++ % 2 == 0 && !s->stats_pending) {
			static const char q[] = "{\"op\":\"stats\"}";
			if (worker_request(c, s->conn_id, q, sizeof(q) - 1, stream_stats_reply) == 0)
				s->stats_pending = true;
			else
				stream_stats_reply(c, s->conn_id, 503, "", 0);
		}
	}
	if (!live)
		ev_timer_stop(loop, w);
}

void dashboard_stream(struct conn *c, const struct http_request *req)
{
	char room[ROOM_MAX * 3 + 1] = "";
	if (!worker.reader) {    /* an edge: the stream reads history from the database */
		dashboard_fail(c, 404, "not_found", "the dashboard runs on the primary");
		return;
	}
	if (req->query && http_query_param(req->query, req->query_len, "room", room, sizeof(room)) > 0 &&
	    !acl_room_valid(room, strlen(room))) {
		dashboard_fail(c, 400, "bad_request", "invalid room name");
		return;
	}
	size_t slot = DASHBOARD_STREAMS_MAX;
	for (size_t i = 0; i < DASHBOARD_STREAMS_MAX && slot == DASHBOARD_STREAMS_MAX; i++)
		if (!streams[i] || !map_get_u64(&worker.conns, streams[i]->conn_id))
			slot = i;
	if (slot == DASHBOARD_STREAMS_MAX) {
		dashboard_fail(c, 503, "unavailable", "too many dashboard streams");
		return;
	}
	struct buf head = { 0 };
	buf_printf(&head, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
			  "Cache-Control: no-store\r\nX-Accel-Buffering: no\r\nConnection: close\r\n"
			  "Content-Security-Policy: %s\r\n%s\r\n", dashboard_csp, dashboard_headers);
	if (conn_http_stream(c, &head) < 0) {
		buf_free(&head);
		dashboard_fail(c, 400, "bad_request", "a stream must be the only request in flight");
		return;
	}
	buf_free(&head);
	free(streams[slot]);
	struct stream *s = xcalloc(1, sizeof(*s));
	s->conn_id = c->id;
	snprintf(s->room, sizeof(s->room), "%s", room);
	streams[slot] = s;
	conn_send_bytes(c, "retry: 2000\n\n", 13);
	if (s->room[0]) {
		struct store_room sr;
		if (store_room_get(worker.reader, s->room, false, &sr) == 1)
			s->seq = MAX(sr.last_seq - STREAM_BACKLOG, 0);
		stream_room(s, c);
	}
	if (!ev_is_active(&stream_timer)) {
		ev_timer_init(&stream_timer, stream_tick, 0., TICK);
		ev_timer_start(worker.loop, &stream_timer);
	}
}
