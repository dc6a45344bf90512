/* eio.c -- Engine.IO v4 sessions in a worker (see eio.h and docs/socketio.md).
 *
 * A session lives in the worker that created it; its sid starts with its id,
 * which holds that worker's slot. SO_REUSEPORT spreads HTTP requests over
 * every worker, so a request for another worker's session is handed over
 * with its socket: the file descriptor and the bytes already read go to the
 * owner over a Unix socket (SCM_RIGHTS), which adopts it as one of its own
 * connections. */
#include "eio.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <sodium.h>

#include "config.h"
#include "conn.h"
#include "eiopkt.h"
#include "ipc.h"
#include "log.h"
#include "map.h"
#include "util.h"
#include "worker.h"
#include "ws.h"

#define EIO_SID_LEN 32             /* id and key, 16 hex digits each */
#define HANDOFF_MAX (128 * 1024)   /* bytes read ahead that may go with a socket */
#define ORIGIN_MAX 256

/* Long-polling and the upgrade from it: only a session that polls has this,
 * until it runs on a WebSocket. */
struct eio_poll {
	struct conn *probe;        /* a WebSocket being upgraded to */
	bool upgrading;            /* the probe was answered: polls get noop */
	bool get_held;             /* a poll waits for packets */
	uint32_t get_ticket;
	uint64_t get_conn;
	char *get_origin;          /* the held poll's Origin (CORS), or NULL */
	struct buf pollq;          /* packets for the next poll, separated by 0x1e */
};

struct eio_session {
	uint64_t id;
	uint64_t key;              /* the sid's random half */
	bool websocket;            /* the transport is WebSocket (from the start or upgraded) */
	bool closed;
	bool pong_wait;
	bool dirty;
	uint32_t ip;
	const struct eio_app *app;
	void *data;
	struct conn *ws;           /* the WebSocket transport */
	struct eio_poll *poll;     /* while polling, else NULL */
	ev_timer timer;            /* next ping, or the pong's deadline */
	int64_t connected_at;
	const char *close_reason;  /* eio_close_soon */
	struct eio_session *dirty_next, *dead_next;
};

/* Sessions the client closed while no poll was held: a poll sent just before
 * the close (it may reach us after it, through another worker) ends with a
 * noop rather than an error. sid -> mono ms until which this holds. */
static struct map closed_recently;
#define CLOSED_GRACE_MS 1000
static struct map sessions;    /* id -> session */
static struct eio_session *dirty, *dead;
static int handoff_fd = -1;
static ev_io handoff_io;

static void session_end(struct eio_session *es, bool by_client, const char *reason);

/* ---- accessors ------------------------------------------------------------------ */

void *eio_data(const struct eio_session *es) { return es->data; }
void eio_set_data(struct eio_session *es, void *data) { es->data = data; }
uint64_t eio_id(const struct eio_session *es) { return es->id; }
int64_t eio_connected_at(const struct eio_session *es) { return es->connected_at; }
bool eio_is_open(const struct eio_session *es) { return !es->closed; }
size_t eio_count(void) { return sessions.count; }

/* The sid: the session's id (any worker can tell from it where the session
 * lives), then its random key. */
static void sid_format(const struct eio_session *es, char out[EIO_SID_LEN + 1])
{
	snprintf(out, EIO_SID_LEN + 1, "%016" PRIx64 "%016" PRIx64, es->id, es->key);
}

/* Reads the id and key of a sid; -1 when it is not one. */
static int sid_parse(const char *sid, uint64_t *id, uint64_t *key)
{
	char half[EIO_SID_LEN / 2 + 1];
	if (strlen(sid) != EIO_SID_LEN || strspn(sid, "0123456789abcdef") != EIO_SID_LEN)
		return -1;
	memcpy(half, sid, EIO_SID_LEN / 2);
	half[EIO_SID_LEN / 2] = '\0';
	*id = strtoull(half, NULL, 16);
	*key = strtoull(sid + EIO_SID_LEN / 2, NULL, 16);
	return 0;
}

struct eio_session *eio_find_id(uint64_t id)
{
	return map_get_u64(&sessions, id);
}

const char *eio_addr(const struct eio_session *es)
{
	static char text[INET_ADDRSTRLEN];
	return inet_ntop(AF_INET, &es->ip, text, sizeof(text));
}

size_t eio_backlog(const struct eio_session *es)
{
	if (es->websocket)
		return es->ws ? es->ws->out_bytes : 0;
	return es->poll->pollq.len;
}

void eio_foreach(const struct eio_app *app, void (*fn)(struct eio_session *es, void *arg),
		 void *arg)
{
	struct map_iter it = { 0 };
	struct map_entry *e;
	while ((e = map_next(&sessions, &it)))
		if (((struct eio_session *)e->val)->app == app)
			fn(e->val, arg);
}

/* ---- HTTP responses --------------------------------------------------------------- */

static void put_cors(struct buf *out, const char *origin, size_t len)
{
	if (!origin || !len)
		return;
	buf_printf(out, "Access-Control-Allow-Origin: %.*s\r\n"
			"Access-Control-Allow-Credentials: true\r\nVary: Origin\r\n", (int)len, origin);
}

static void respond(struct conn *c, int status, const char *type, const char *body, size_t n,
		    const char *origin, size_t olen)
{
	struct buf out = { 0 };
	buf_printf(&out, "HTTP/1.1 %d %s\r\nContent-Length: %zu\r\n", status,
		   http_status_text(status), n);
	if (type)
		buf_printf(&out, "Content-Type: %s\r\n", type);
	put_cors(&out, origin, olen);
	if (!conn_http_keep_alive(c))
		buf_appends(&out, "Connection: close\r\n");
	buf_appends(&out, "\r\n");
	buf_append(&out, body, n);
	conn_http_reply(c, &out);
	buf_free(&out);
}

/* The errors of Engine.IO's reference server: 400 (403) with {code, message}. */
enum { EIO_ERR_TRANSPORT = 0, EIO_ERR_SID = 1, EIO_ERR_METHOD = 2, EIO_ERR_REQUEST = 3,
       EIO_ERR_FORBIDDEN = 4, EIO_ERR_VERSION = 5 };

static void respond_error(struct conn *c, int code, const char *origin, size_t olen)
{
	static const char *const messages[] = {
		"Transport unknown", "Session ID unknown", "Bad handshake method",
		"Bad request", "Forbidden", "Unsupported protocol version",
	};
	char body[96];
	int n = snprintf(body, sizeof(body), "{\"code\":%d,\"message\":\"%s\"}", code,
			 messages[code]);
	respond(c, code == EIO_ERR_FORBIDDEN ? 403 : 400, "application/json", body, (size_t)n,
		origin, olen);
}

static void respond_text(struct conn *c, const char *body, size_t n, const char *origin,
			 size_t olen)
{
	respond(c, 200, "text/plain; charset=UTF-8", body, n, origin, olen);
}

/* ---- sending -------------------------------------------------------------------------- */

static void mark_dirty(struct eio_session *es)
{
	if (es->dirty || es->closed)
		return;
	es->dirty = true;
	es->dirty_next = dirty;
	dirty = es;
}

static void ws_send(struct conn *c, int opcode, const void *p, size_t n)
{
	struct sbuf *f = ws_frame_new(opcode, p, n);
	conn_send(c, f);
	sbuf_unref(f);
}

/* Queues a whole packet (type included) on the polling queue. */
static void poll_queue(struct eio_session *es, const char *p, size_t n)
{
	struct buf *q = &es->poll->pollq;
	if (q->len)
		buf_append(q, "\x1e", 1);
	buf_append(q, p, n);
	mark_dirty(es);
	if (q->len > worker.cfg->send_queue_max) {
		worker.stats.slow_closed++;
		eio_close_soon(es, "slow consumer");
	}
}

/* A control or message packet p[0..n) (type first) to the client. */
static void send_packet(struct eio_session *es, const char *p, size_t n)
{
	if (es->closed)
		return;
	if (es->websocket)
		ws_send(es->ws, WS_OP_TEXT, p, n);
	else
		poll_queue(es, p, n);
}

void eio_send_text(struct eio_session *es, const char *p, size_t n)
{
	struct buf b = { 0 };
	buf_reserve(&b, n + 1);
	b.data[b.len++] = EIO_MESSAGE;
	buf_append(&b, p, n);
	send_packet(es, b.data, b.len);
	buf_free(&b);
}

void eio_send_binary(struct eio_session *es, const void *p, size_t n)
{
	if (es->closed)
		return;
	if (es->websocket) {
		ws_send(es->ws, WS_OP_BINARY, p, n);
		return;
	}
	struct buf b = { 0 };
	eiopkt_put_binary(&b, p, n);
	poll_queue(es, b.data, b.len);
	buf_free(&b);
}

void eio_send_shared(struct eio_session *es, struct sbuf *ws_frame, const char *packet,
		     size_t n)
{
	if (es->closed)
		return;
	if (es->websocket)
		conn_send(es->ws, ws_frame);
	else
		poll_queue(es, packet, n);
}

static void poll_free(struct eio_session *es)
{
	if (!es->poll)
		return;
	buf_free(&es->poll->pollq);
	free(es->poll->get_origin);
	free(es->poll);
	es->poll = NULL;
}

/* Once upgraded: what waited for a poll goes onto the WebSocket, and the
 * polling state goes. */
static void poll_to_ws(struct eio_session *es)
{
	struct buf *q = &es->poll->pollq;
	size_t pos = 0, n;
	const char *pkt;
	while (eiopkt_payload_next(q->data, q->len, &pos, &pkt, &n) > 0) {
		if (pkt[0] == 'b') {
			uint8_t *bin = xmalloc(n);
			long len = eiopkt_b64_decode(pkt + 1, n - 1, bin, n);
			if (len >= 0)
				ws_send(es->ws, WS_OP_BINARY, bin, (size_t)len);
			free(bin);
		} else {
			ws_send(es->ws, WS_OP_TEXT, pkt, n);
		}
	}
	poll_free(es);
}

/* The poll held by es, if its connection is still there. */
static struct conn *held_get(struct eio_session *es)
{
	struct eio_poll *p = es->poll;
	if (!p || !p->get_held)
		return NULL;
	struct conn *c = map_get_u64(&worker.conns, p->get_conn);
	if (!c || c->state != CONN_HTTP) {
		p->get_held = false;
		free(p->get_origin);
		p->get_origin = NULL;
		return NULL;
	}
	return c;
}

/* Answers the held poll with body (or the queued packets when body is NULL). */
static void answer_get(struct eio_session *es, const char *body)
{
	struct conn *c = held_get(es);
	if (!c)
		return;
	struct eio_poll *p = es->poll;
	p->get_held = false;
	c->http_cur = p->get_ticket;
	const char *origin = p->get_origin;
	size_t olen = origin ? strlen(origin) : 0;
	if (body) {
		respond_text(c, body, strlen(body), origin, olen);
	} else {
		respond_text(c, p->pollq.data, p->pollq.len, origin, olen);
		buf_free(&p->pollq);
	}
	free(p->get_origin);
	p->get_origin = NULL;
}

/* ---- heartbeat ---------------------------------------------------------------------- */

static void arm_timer(struct eio_session *es, int ms)
{
	ev_timer_stop(worker.loop, &es->timer);
	/* The loop's clock may be a little behind: take the time now, so that
	 * 300 ms means 300 ms. */
	ev_now_update(worker.loop);
	ev_timer_set(&es->timer, (double)ms / 1000.0, 0);
	ev_timer_start(worker.loop, &es->timer);
}

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct eio_session *es = w->data;
	if (es->close_reason) {
		session_end(es, false, es->close_reason);
		return;
	}
	if (es->pong_wait) {
		session_end(es, false, "ping timeout");
		return;
	}
	send_packet(es, "2", 1);
	es->pong_wait = true;
	arm_timer(es, worker.cfg->socketio_ping_timeout);
}

/* ---- packets from the client --------------------------------------------------------- */

/* Handles one packet p[0..n) of the session's own transport. Returns -1 when
 * it is malformed (the session is then to be closed). */
static int on_packet(struct eio_session *es, const char *p, size_t n, bool binary)
{
	if (binary) {
		es->app->message(es, true, p, n);
		return 0;
	}
	if (n > 0 && p[0] == 'b') {
		uint8_t *bin = xmalloc(n);
		long len = eiopkt_b64_decode(p + 1, n - 1, bin, n);
		if (len >= 0)
			es->app->message(es, true, (const char *)bin, (size_t)len);
		free(bin);
		return len < 0 ? -1 : 0;
	}
	switch (eiopkt_type(p, n)) {
	case EIO_PONG:
		if (es->pong_wait) {
			es->pong_wait = false;
			arm_timer(es, worker.cfg->socketio_ping_interval);
		}
		return 0;
	case EIO_MESSAGE:
		es->app->message(es, false, p + 1, n - 1);
		return 0;
	case EIO_CLOSE:
		session_end(es, true, "client close");
		return 0;
	case EIO_NOOP:
	case EIO_PING:
		return 0;
	default:
		return -1;
	}
}

/* ---- sessions ------------------------------------------------------------------------ */

static struct eio_session *session_new(struct conn *c, const struct eio_app *app)
{
	struct eio_session *es = xcalloc(1, sizeof(*es));
	es->id = worker.next_conn_id++;
	randombytes_buf(&es->key, sizeof(es->key));
	es->app = app;
	es->ip = c->ip;
	es->connected_at = now_ms();
	ev_init(&es->timer, timer_cb);
	es->timer.data = es;
	map_put_u64(&sessions, es->id, es);
	arm_timer(es, worker.cfg->socketio_ping_interval);
	return es;
}

static void open_packet(struct eio_session *es, struct buf *b, bool upgrades)
{
	const struct config *cfg = worker.cfg;
	char sid[EIO_SID_LEN + 1];
	sid_format(es, sid);
	buf_printf(b, "0{\"sid\":\"%s\",\"upgrades\":[%s],\"pingInterval\":%d,"
		      "\"pingTimeout\":%d,\"maxPayload\":%zu}", sid,
		   upgrades ? "\"websocket\"" : "", cfg->socketio_ping_interval,
		   cfg->socketio_ping_timeout, cfg->socketio_max_payload);
}

static void session_end(struct eio_session *es, bool by_client, const char *reason)
{
	if (es->closed)
		return;
	es->closed = true;
	map_del_u64(&sessions, es->id);
	ev_timer_stop(worker.loop, &es->timer);
	char sid[EIO_SID_LEN + 1];
	sid_format(es, sid);
	/* A poll in the works ends: noop when the client closed, else close. */
	if (by_client && !held_get(es) && !es->websocket) {
		if (closed_recently.count > 4096)
			map_free(&closed_recently);
		map_put(&closed_recently, sid, strlen(sid),
			(void *)(intptr_t)(mono_ms() + CLOSED_GRACE_MS));
	}
	answer_get(es, by_client ? "6" : "1");
	struct conn *ws = es->ws, *probe = es->poll ? es->poll->probe : NULL;
	es->ws = NULL;
	if (probe)
		es->poll->probe = NULL;
	if (ws) {
		ws->eio = NULL;
		conn_ws_close(ws, WS_CLOSE_NORMAL, "");
	}
	if (probe) {
		probe->eio = NULL;
		conn_ws_close(probe, WS_CLOSE_NORMAL, "");
	}
	log_debug("event=eio_close sid=%s reason=\"%s\"", sid, reason);
	es->app->close(es, reason);
	es->dead_next = dead;
	dead = es;
}

void eio_close(struct eio_session *es, const char *reason)
{
	session_end(es, false, reason);
}

void eio_close_all(const char *reason)
{
	struct map_iter it = { 0 };
	struct map_entry *e;
	while ((e = map_next(&sessions, &it)))
		session_end(e->val, false, reason);
}

void eio_close_soon(struct eio_session *es, const char *reason)
{
	if (es->closed || es->close_reason)
		return;
	es->close_reason = reason;
	ev_timer_stop(worker.loop, &es->timer);
	ev_timer_set(&es->timer, 0, 0);
	ev_timer_start(worker.loop, &es->timer);
}

void eio_conn_closed(struct conn *c)
{
	struct eio_session *es = c->eio;
	c->eio = NULL;
	if (!es)
		return;
	if (es->poll && es->poll->probe == c) {
		es->poll->probe = NULL;
		es->poll->upgrading = false;
	} else if (es->ws == c) {
		es->ws = NULL;
		session_end(es, true, "transport close");
	}
}

void eio_flush(void)
{
	while (dirty) {
		struct eio_session *es = dirty;
		dirty = es->dirty_next;
		es->dirty = false;
		if (!es->closed && es->poll && !es->poll->upgrading && es->poll->pollq.len)
			answer_get(es, NULL);
	}
	while (dead) {
		struct eio_session *es = dead;
		dead = es->dead_next;
		poll_free(es);
		free(es);
	}
}

/* ---- WebSocket ------------------------------------------------------------------------- */

static bool ws_request_ok(const struct http_request *req)
{
	const struct http_header *key = http_find_header(req, "Sec-WebSocket-Key");
	const struct http_header *ver = http_find_header(req, "Sec-WebSocket-Version");
	return req->upgrade_websocket && key && key->value_len == 24 && ver &&
	       ver->value_len == 2 && memcmp(ver->value, "13", 2) == 0;
}

static void ws_start(struct conn *c, const struct http_request *req, struct eio_session *es)
{
	conn_ws_upgrade(c, req, NULL, false);
	c->ws.max_message = worker.cfg->socketio_max_payload;
	c->eio = es;
}

void eio_ws_message(struct conn *c, int opcode, const char *p, size_t n)
{
	struct eio_session *es = c->eio;
	if (!es || es->closed)
		return;
	struct eio_poll *poll = es->poll;
	if (poll && c == poll->probe) {
		if (opcode == WS_OP_TEXT && n == 6 && memcmp(p, "2probe", 6) == 0) {
			ws_send(c, WS_OP_TEXT, "3probe", 6);
			poll->upgrading = true;
			answer_get(es, "6");   /* the poll in the works ends cleanly */
		} else if (opcode == WS_OP_TEXT && n == 1 && p[0] == EIO_UPGRADE &&
			   poll->upgrading) {
			es->websocket = true;
			es->ws = c;
			answer_get(es, "6");
			poll_to_ws(es);
		} else {
			poll->probe = NULL;
			poll->upgrading = false;
			c->eio = NULL;
			conn_ws_close(c, WS_CLOSE_PROTOCOL, "bad upgrade");
		}
		return;
	}
	if (c != es->ws)
		return;
	if (on_packet(es, p, n, opcode == WS_OP_BINARY) < 0)
		session_end(es, false, "parse error");
}

/* ---- hand-over of sockets between workers ------------------------------------------------ */

static socklen_t handoff_addr(int slot, struct sockaddr_un *sa)
{
	/* The hub's name is "heraldd-<master pid>-hub": the workers' go beside it. */
	const char *hub = worker.ctx->hub_name;
	size_t base = strlen(hub) > 3 ? strlen(hub) - 3 : 0;
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	int n = snprintf(sa->sun_path + 1, sizeof(sa->sun_path) - 1, "%.*sw%d", (int)base, hub,
			 slot);
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
}

/* Passes c's socket and the bytes from `from` on to the worker in slot.
 * Returns 0 when it went (c is then closed here), -1 when it could not. */
static int handoff(struct conn *c, int slot, const char *from)
{
	size_t n = (size_t)(c->in.data + c->in.len - from);
	if (slot < 0 || slot >= worker.cfg->workers || n > HANDOFF_MAX || c->out_bytes ||
	    c->http_next - c->http_sent != 1)
		return -1;
	struct sockaddr_un sa;
	socklen_t salen = handoff_addr(slot, &sa);
	int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -1;
	struct timeval tv = { 1, 0 };
	setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(s, (struct sockaddr *)&sa, salen) < 0)
		goto fail;
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} ctl;
	memset(&ctl, 0, sizeof(ctl));
	struct iovec iov = { (void *)from, n };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
			      .msg_controllen = sizeof(ctl.buf) };
	struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &c->fd, sizeof(int));
	if (sendmsg(s, &msg, MSG_NOSIGNAL) != (ssize_t)n)
		goto fail;
	close(s);
	conn_close(c, "handed over");
	return 0;

fail:
	log_warn("event=eio_handoff_failed slot=%d error=\"%s\"", slot + 1, strerror(errno));
	close(s);
	return -1;
}

static void handoff_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	static char data[HANDOFF_MAX];
	for (int i = 0; i < 64; i++) {
		int s = accept4(w->fd, NULL, NULL, SOCK_CLOEXEC);
		if (s < 0)
			return;
		if (!ipc_peer_trusted(s)) {
			close(s);
			continue;
		}
		struct timeval tv = { 1, 0 };
		setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		union {
			struct cmsghdr h;
			char buf[CMSG_SPACE(sizeof(int))];
		} ctl;
		struct iovec iov = { data, sizeof(data) };
		struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
				      .msg_controllen = sizeof(ctl.buf) };
		ssize_t n = recvmsg(s, &msg, MSG_CMSG_CLOEXEC);
		int fd = -1;
		struct cmsghdr *cm = n >= 0 ? CMSG_FIRSTHDR(&msg) : NULL;
		if (cm && cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS &&
		    cm->cmsg_len == CMSG_LEN(sizeof(int)))
			memcpy(&fd, CMSG_DATA(cm), sizeof(int));
		close(s);
		if (fd < 0)
			continue;
		if ((msg.msg_flags & MSG_TRUNC) || n <= 0) {
			close(fd);
			continue;
		}
		conn_adopt(fd, data, (size_t)n);
	}
}

void eio_init(void)
{
	struct sockaddr_un sa;
	socklen_t len = handoff_addr(worker.slot, &sa);
	handoff_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (handoff_fd < 0 || bind(handoff_fd, (struct sockaddr *)&sa, len) < 0 ||
	    listen(handoff_fd, 256) < 0) {
		/* Polling then works only when the requests reach this worker. */
		log_error("event=eio_handoff_listen_failed error=\"%s\"", strerror(errno));
		if (handoff_fd >= 0)
			close(handoff_fd);
		handoff_fd = -1;
		return;
	}
	ev_io_init(&handoff_io, handoff_cb, handoff_fd, EV_READ);
	ev_io_start(worker.loop, &handoff_io);
}

/* ---- HTTP ------------------------------------------------------------------------------ */

static bool method_is(const struct http_request *req, const char *m)
{
	return req->method_len == strlen(m) && memcmp(req->method, m, req->method_len) == 0;
}

static void handshake(struct conn *c, const struct http_request *req, bool websocket,
		      const struct eio_app *app, const char *origin, size_t olen)
{
	if (websocket && !ws_request_ok(req)) {
		respond_error(c, EIO_ERR_REQUEST, origin, olen);
		return;
	}
	struct eio_session *es = session_new(c, app);
	struct buf b = { 0 };
	open_packet(es, &b, !websocket);
	if (websocket) {
		es->websocket = true;
		es->ws = c;
		ws_start(c, req, es);
		ws_send(c, WS_OP_TEXT, b.data, b.len);
	} else {
		es->poll = xcalloc(1, sizeof(*es->poll));
		conn_long_poll(c);
		respond_text(c, b.data, b.len, origin, olen);
	}
	buf_free(&b);
	app->open(es, req);
}

/* A POST of packets. Returns -1 after answering when the session must end. */
static int post(struct conn *c, struct eio_session *es, const char *body, size_t len,
		const char *origin, size_t olen)
{
	size_t pos = 0, n;
	const char *pkt;
	int r;
	while ((r = eiopkt_payload_next(body, len, &pos, &pkt, &n)) > 0) {
		if (on_packet(es, pkt, n, false) < 0) {
			r = -1;
			break;
		}
		if (es->closed)
			break;
	}
	if (r < 0) {
		respond_error(c, EIO_ERR_REQUEST, origin, olen);
		return -1;
	}
	respond(c, 200, "text/html", "ok", 2, origin, olen);
	return 0;
}

void eio_http(struct conn *c, const struct http_request *req, const char *body, size_t len,
	      const struct eio_app *app)
{
	const struct http_header *oh = http_find_header(req, "Origin");
	const char *origin = oh && oh->value_len < ORIGIN_MAX ? oh->value : NULL;
	size_t olen = origin ? oh->value_len : 0;
	if (oh && !config_origin_allowed(worker.cfg, oh->value, oh->value_len)) {
		respond_error(c, EIO_ERR_FORBIDDEN, NULL, 0);
		return;
	}
	if (method_is(req, "OPTIONS")) {
		struct buf out = { 0 };
		buf_appends(&out, "HTTP/1.1 204 No Content\r\nAccess-Control-Allow-Methods: GET, POST\r\n"
				  "Access-Control-Allow-Headers: Content-Type, Authorization\r\n");
		put_cors(&out, origin, olen);
		buf_appends(&out, "Content-Length: 0\r\n\r\n");
		conn_http_reply(c, &out);
		buf_free(&out);
		return;
	}
	struct eiopkt_query q;
	if (eiopkt_query_parse(req->query, req->query_len, &q) < 0) {
		respond_error(c, EIO_ERR_SID, origin, olen);
		return;
	}
	if (strcmp(q.eio, "4") != 0) {
		respond_error(c, EIO_ERR_VERSION, origin, olen);
		return;
	}
	bool websocket = strcmp(q.transport, "websocket") == 0;
	if (!websocket && strcmp(q.transport, "polling") != 0) {
		respond_error(c, EIO_ERR_TRANSPORT, origin, olen);
		return;
	}
	if (!q.sid[0]) {
		if (!method_is(req, "GET"))
			respond_error(c, EIO_ERR_METHOD, origin, olen);
		else
			handshake(c, req, websocket, app, origin, olen);
		return;
	}
	uint64_t id = 0, key = 0;
	int slot = sid_parse(q.sid, &id, &key) < 0 ? -1 : (int)(id >> WORKER_ID_SLOT_SHIFT) - 1;
	if (slot != worker.slot && handoff(c, slot, req->method) == 0)
		return;
	struct eio_session *es = map_get_u64(&sessions, id);
	if (!es || es->key != key || es->closed || es->app != app) {
		intptr_t until = (intptr_t)map_del(&closed_recently, q.sid, strlen(q.sid));
		if (!websocket && method_is(req, "GET") && until > mono_ms())
			respond_text(c, "6", 1, origin, olen);
		else
			respond_error(c, EIO_ERR_SID, origin, olen);
		return;
	}
	if (websocket) {
		/* An upgrade: one probe at a time, and only from polling. */
		if (!ws_request_ok(req)) {
			respond_error(c, EIO_ERR_REQUEST, origin, olen);
			return;
		}
		if (es->websocket || es->poll->probe) {
			/* As the reference server does: open, then close at once. */
			conn_ws_upgrade(c, req, NULL, false);
			conn_ws_close(c, WS_CLOSE_NORMAL, "");
			return;
		}
		es->poll->probe = c;
		ws_start(c, req, es);
		return;
	}
	if (es->websocket) {
		respond_error(c, EIO_ERR_REQUEST, origin, olen);
		return;
	}
	if (method_is(req, "GET")) {
		conn_long_poll(c);
		if (held_get(es)) {
			/* Two polls at once: a broken client. */
			respond_error(c, EIO_ERR_REQUEST, origin, olen);
			session_end(es, false, "duplicate poll");
			return;
		}
		struct eio_poll *p = es->poll;
		if (p->upgrading) {
			respond_text(c, "6", 1, origin, olen);
			return;
		}
		p->get_held = true;
		p->get_conn = c->id;
		p->get_ticket = c->http_cur;
		p->get_origin = origin ? xstrndup(origin, olen) : NULL;
		if (p->pollq.len)
			mark_dirty(es);  /* answered at the end of the loop turn, with all there is */
		return;
	}
	if (method_is(req, "POST")) {
		if (len > worker.cfg->socketio_max_payload) {
			static const char too_large[] = "{\"code\":1,\"message\":\"Payload too large\"}";
			respond(c, 413, "application/json", too_large, sizeof(too_large) - 1, origin,
				olen);
			session_end(es, false, "payload too large");
			return;
		}
		if (post(c, es, body, len, origin, olen) < 0)
			session_end(es, false, "parse error");
		return;
	}
	respond_error(c, EIO_ERR_METHOD, origin, olen);
}

/* ---- the test-only echo ------------------------------------------------------------------- */

static void echo_open(struct eio_session *es, const struct http_request *req)
{
}

static void echo_message(struct eio_session *es, bool binary, const char *p, size_t n)
{
	if (binary)
		eio_send_binary(es, p, n);
	else
		eio_send_text(es, p, n);
}

static void echo_close(struct eio_session *es, const char *reason)
{
}

const struct eio_app eio_echo_app = { echo_open, echo_message, echo_close };
