/* conn.c -- client and admin connections in a worker: reading, HTTP request
 * framing, the WebSocket upgrade and frame I/O, output queues of shared
 * buffers flushed once per loop turn with writev, timers, and closing. */
#include "conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "api.h"
#include "eio.h"
#include "log.h"
#include "session.h"
#include "util.h"
#include "worker.h"

#define READ_CHUNK 16384
#define HTTP_PIPELINE 16       /* requests of one connection in the works at once */
#define CLOSE_GRACE 2.0        /* seconds to wait for the peer's close frame */
#define HANDSHAKE_GRACE_MS 1000

static struct conn *conns;     /* every open connection */
static size_t nconns;
static struct conn *dirty;     /* queued output since the last flush */
static struct conn *dead;      /* closed, to free after the loop turn */

/* Client sockets that have not finished their HTTP handshake, oldest first,
 * with a count per address: idle or slow handshakes past a budget make way
 * for new ones, oldest first, so a flood of them costs little and never
 * locks a well-behaved client out. */
static struct conn *hs_head, *hs_tail;
static size_t nhandshakes;
static struct map hs_per_ip;   /* ip -> count */

static void process_input(struct conn *c);
static bool flush_one(struct conn *c);

size_t conn_handshakes(void)
{
	return nhandshakes;
}

static intptr_t hs_count_add(uint32_t ip, intptr_t delta)
{
	intptr_t n = (intptr_t)map_get_u64(&hs_per_ip, ip) + delta;
	if (n > 0)
		map_put_u64(&hs_per_ip, ip, (void *)n);
	else
		map_del_u64(&hs_per_ip, ip);
	return n;
}

static void handshake_done(struct conn *c)
{
	if (!c->handshaking)
		return;
	c->handshaking = false;
	if (c->hs_prev)
		c->hs_prev->hs_next = c->hs_next;
	else
		hs_head = c->hs_next;
	if (c->hs_next)
		c->hs_next->hs_prev = c->hs_prev;
	else
		hs_tail = c->hs_prev;
	nhandshakes--;
	hs_count_add(c->ip, -1);
}

/* Makes room for one more handshake, then counts c in. Past the budget of
 * its address, the oldest handshake of that address goes, once it has had
 * HANDSHAKE_GRACE_MS (a burst through a proxy is not a flood); past the
 * worker's budget, the oldest of all goes. */
static void handshake_start(struct conn *c)
{
	const struct config *cfg = worker.cfg;
	struct conn *victim = NULL;
	if (nhandshakes >= (size_t)cfg->max_handshakes) {
		victim = hs_head;
	} else if ((intptr_t)map_get_u64(&hs_per_ip, c->ip) >= cfg->max_handshakes_per_ip &&
		   !cidr_list_match_ipv4(&cfg->trusted_proxies, c->ip)) {
		/* (a trusted proxy carries many clients: only the worker's budget holds) */
		for (victim = hs_head; victim && victim->ip != c->ip; victim = victim->hs_next)
			;
		if (victim && c->connected_at - victim->connected_at < HANDSHAKE_GRACE_MS)
			victim = NULL;
	}
	if (victim) {
		worker.stats.handshakes_evicted++;
		conn_close(victim, "handshake evicted");
	}
	c->handshaking = true;
	c->hs_prev = hs_tail;
	c->hs_next = NULL;
	if (hs_tail)
		hs_tail->hs_next = c;
	else
		hs_head = c;
	hs_tail = c;
	nhandshakes++;
	hs_count_add(c->ip, 1);
}

size_t conn_count(void)
{
	return nconns;
}

struct conn *conn_first(void)
{
	return conns;
}

const char *conn_addr(const struct conn *c)
{
	static char text[INET_ADDRSTRLEN];
	if (c->fwd_addr)
		return c->fwd_addr;
	return inet_ntop(AF_INET, &c->ip, text, sizeof(text));
}

/* Behind a trusted proxy, each request names its client in X-Forwarded-For
 * (a proxy's keep-alive connection carries many clients' requests). The
 * upgrade request's address stays the WebSocket's. */
static void forwarded_for(struct conn *c, const struct http_request *req)
{
	const struct cidr_list *trusted = &worker.cfg->trusted_proxies;
	if (!trusted->n || !cidr_list_match_ipv4(trusted, c->ip))
		return;
	const struct http_header *h = http_find_header(req, "X-Forwarded-For");
	char addr[CIDR_ADDR_TEXT];
	free(c->fwd_addr);
	c->fwd_addr = NULL;
	if (h && cidr_forwarded_for(trusted, h->value, h->value_len, addr) == 0)
		c->fwd_addr = xstrdup(addr);
}

/* ---- closing ---------------------------------------------------------------- */

void conn_close(struct conn *c, const char *why)
{
	if (c->state == CONN_DEAD)
		return;
	log_debug("event=close conn=%llu addr=%s reason=\"%s\"", (unsigned long long)c->id,
		  conn_addr(c), why);
	if (c->session)
		session_close(c);
	if (c->eio)
		eio_conn_closed(c);
	handshake_done(c);
	ev_io_stop(worker.loop, &c->io);
	ev_timer_stop(worker.loop, &c->timer);
	close(c->fd);
	c->fd = -1;
	c->state = CONN_DEAD;
	map_del_u64(&worker.conns, c->id);
	if (c->prev)
		c->prev->next = c->next;
	else
		conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	nconns--;
	/* Freed after the loop turn: callers up the stack may still hold c. */
	c->next = dead;
	dead = c;
}

static void conn_free(struct conn *c)
{
	for (size_t i = 0; i < c->outq_len; i++)
		sbuf_unref(c->outq[i]);
	free(c->outq);
	for (size_t i = 0; c->http_held && i < HTTP_PIPELINE; i++)
		if (c->http_held[i])
			sbuf_unref(c->http_held[i]);
	free(c->http_held);
	buf_free(&c->in);
	ws_reader_free(&c->ws);
	free(c->fwd_addr);
	free(c);
}

/* One watcher for the socket, rather than one for reading and one for
 * writing, keeps an idle connection small. It waits for EV_READ while input
 * is wanted (not while requests wait) and for EV_WRITE while output waits
 * for room in the socket. */
static bool watching(const struct conn *c, int event)
{
	return ev_is_active(&c->io) && (c->io.events & event);
}

static void watch(struct conn *c, int event, bool on)
{
	int events = ev_is_active(&c->io) ? c->io.events & (EV_READ | EV_WRITE) : 0;
	int want = on ? events | event : events & ~event;
	if (want == events)
		return;
	ev_io_stop(worker.loop, &c->io);
	ev_io_set(&c->io, c->fd, want);
	if (want)
		ev_io_start(worker.loop, &c->io);
}

static void set_timer(struct conn *c, double after, double repeat)
{
	ev_timer_stop(worker.loop, &c->timer);
	ev_timer_set(&c->timer, after, repeat);
	ev_timer_start(worker.loop, &c->timer);
}

/* ---- output ----------------------------------------------------------------- */

static void mark_dirty(struct conn *c)
{
	if (c->dirty)
		return;
	c->dirty = true;
	c->dirty_next = dirty;
	dirty = c;
}

/* A client that does not read: drop what it has not started to receive,
 * tell it why, and let the close handshake (bounded by a timer) finish. */
static void slow_consumer(struct conn *c)
{
	worker.stats.slow_closed++;
	log_info("event=slow_consumer conn=%llu addr=%s queued=%zu", (unsigned long long)c->id,
		 conn_addr(c), c->out_bytes);
	size_t keep = c->out_off ? 1 : 0;
	for (size_t i = keep; i < c->outq_len; i++) {
		c->out_bytes -= c->outq[i]->len;
		sbuf_unref(c->outq[i]);
	}
	c->outq_len = keep;
	if (keep)
		c->out_bytes = c->outq[0]->len - c->out_off;
	conn_ws_close(c, WS_CLOSE_POLICY, "slow consumer");
}

static void enqueue(struct conn *c, struct sbuf *s)
{
	xgrow(&c->outq, &c->outq_cap, c->outq_len + 1, sizeof(*c->outq));
	c->outq[c->outq_len++] = sbuf_ref(s);
	c->out_bytes += s->len;
	mark_dirty(c);
}

void conn_send(struct conn *c, struct sbuf *s)
{
	/* Nothing follows a close frame (RFC 6455 §5.5.1) or a closing reply. */
	if (c->state != CONN_HTTP && c->state != CONN_WS && c->state != CONN_STREAM)
		return;
	enqueue(c, s);
	if (c->out_bytes > worker.cfg->send_queue_max && c->state == CONN_WS)
		slow_consumer(c);
}

void conn_ws_close(struct conn *c, int code, const char *reason)
{
	if (c->state != CONN_WS)
		return;
	uint8_t payload[125];
	size_t n = ws_close_payload(payload, code, reason);
	struct sbuf *f = ws_frame_new(WS_OP_CLOSE, payload, n);
	c->state = CONN_WS_CLOSING;
	enqueue(c, f);
	sbuf_unref(f);
	set_timer(c, CLOSE_GRACE, 0);
}

void conn_close_all(int code, const char *reason)
{
	struct conn *c = conns, *next;
	for (; c; c = next) {
		next = c->next;
		if (c->state == CONN_WS)
			conn_ws_close(c, code, reason);
		else if (c->state == CONN_HTTP && c->http_next == c->http_sent && !c->out_bytes)
			conn_close(c, reason);
		else if (c->state == CONN_HTTP)
			c->http_closing = true;
		else if (c->state == CONN_STREAM) {
			c->state = CONN_DRAINING;
			mark_dirty(c);
		}
	}
}

void conn_send_bytes(struct conn *c, const void *p, size_t n)
{
	struct sbuf *s = sbuf_from(p, n);
	conn_send(c, s);
	sbuf_unref(s);
}

void conn_ws_send_text(struct conn *c, const char *p, size_t n)
{
	if (c->state != CONN_WS)
		return;
	struct sbuf *f = ws_frame_new(WS_OP_TEXT, p, n);
	conn_send(c, f);
	sbuf_unref(f);
}

/* Writes as much as the socket takes. Returns false when the conn closed. */
static bool flush_one(struct conn *c)
{
	while (c->outq_len > 0) {
		struct iovec iov[64];
		size_t n = MIN(c->outq_len, ARRAY_SIZE(iov));
		for (size_t i = 0; i < n; i++) {
			iov[i].iov_base = c->outq[i]->data;
			iov[i].iov_len = c->outq[i]->len;
		}
		iov[0].iov_base = (char *)iov[0].iov_base + c->out_off;
		iov[0].iov_len -= c->out_off;
		ssize_t w = writev(c->fd, iov, (int)n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				watch(c, EV_WRITE, true);
				return true;
			}
			conn_close(c, "write error");
			return false;
		}
		c->out_bytes -= (size_t)w;
		size_t done = 0, left = (size_t)w + c->out_off;
		while (done < c->outq_len && left >= c->outq[done]->len) {
			left -= c->outq[done]->len;
			sbuf_unref(c->outq[done++]);
		}
		memmove(c->outq, c->outq + done, (c->outq_len - done) * sizeof(*c->outq));
		c->outq_len -= done;
		c->out_off = left;
		if (done < n)      /* short write: the socket is full */
			continue;
	}
	watch(c, EV_WRITE, false);
	/* Most connections are idle most of the time: they keep no queue. */
	free(c->outq);
	c->outq = NULL;
	c->outq_cap = 0;
	if (c->state == CONN_DRAINING) {
		conn_close(c, "done");
		return false;
	}
	return true;
}

void conn_flush_all(void)
{
	while (dirty) {
		struct conn *c = dirty;
		dirty = c->dirty_next;
		c->dirty = false;
		if (c->state != CONN_DEAD && !watching(c, EV_WRITE))
			flush_one(c);
	}
	while (dead) {
		struct conn *c = dead;
		dead = c->next;
		conn_free(c);
	}
}

static void on_writable(struct conn *c)
{
	if (flush_one(c) && c->state == CONN_HTTP && !c->outq_len && c->in.len)
		process_input(c);
}

/* ---- HTTP ------------------------------------------------------------------- */

static uint32_t http_in_flight(const struct conn *c)
{
	return c->http_next - c->http_sent;
}

bool conn_http_keep_alive(const struct conn *c)
{
	return !(c->http_closing && c->http_cur == c->http_next - 1) && !worker.stopping;
}

void conn_http_reply(struct conn *c, struct buf *out)
{
	uint32_t t = c->http_cur;
	if (c->state != CONN_HTTP || t - c->http_sent >= http_in_flight(c))
		return;    /* upgraded or closing meanwhile: nobody to answer */
	struct sbuf *s = sbuf_from(out->data, out->len);
	buf_reset(out);
	if (t != c->http_sent) {
		/* An earlier request is still in the works: wait for its turn. */
		if (!c->http_held)
			c->http_held = xcalloc(HTTP_PIPELINE, sizeof(*c->http_held));
		c->http_held[t % HTTP_PIPELINE] = s;
		return;
	}
	for (;;) {
		conn_send(c, s);
		sbuf_unref(s);
		c->http_sent++;
		s = c->http_held ? c->http_held[c->http_sent % HTTP_PIPELINE] : NULL;
		if (!s || c->http_sent == c->http_next)
			break;
		c->http_held[c->http_sent % HTTP_PIPELINE] = NULL;
	}
	if (c->http_sent != c->http_next)
		return;
	if (c->http_closing || worker.stopping) {
		c->state = CONN_DRAINING;
		return;
	}
	set_timer(c, worker.cfg->handshake_timeout, 0);
	watch(c, EV_READ, true);
	if (c->in.len && !c->dispatching)
		process_input(c);
}

int conn_http_stream(struct conn *c, struct buf *head)
{
	if (c->state != CONN_HTTP || c->http_cur != c->http_sent || c->http_next != c->http_sent + 1)
		return -1;
	conn_send_bytes(c, head->data, head->len);
	buf_reset(head);
	c->http_sent++;
	c->state = CONN_STREAM;
	ev_timer_stop(worker.loop, &c->timer);
	watch(c, EV_READ, true);   /* to see the peer go */
	return 0;
}

static void http_fail(struct conn *c, int status, const char *message)
{
	struct buf out = { 0 };
	static const char *const codes[][2] = {
		{ "400", "bad_request" }, { "413", "too_large" }, { "431", "too_large" },
		{ "501", "not_implemented" }, { "505", "bad_request" },
	};
	const char *code = "bad_request";
	char st[8];
	snprintf(st, sizeof(st), "%d", status);
	for (size_t i = 0; i < ARRAY_SIZE(codes); i++)
		if (strcmp(codes[i][0], st) == 0)
			code = codes[i][1];
	c->http_closing = true;
	c->http_cur = c->http_next++;
	http_error(&out, status, code, message, false);
	conn_http_reply(c, &out);
	buf_free(&out);
}

static void process_http(struct conn *c)
{
	const struct config *cfg = worker.cfg;
	struct http_limits lim = { cfg->max_header_size, (size_t)cfg->max_headers,
				   cfg->max_body_size };
	size_t off = 0;
	bool blocked = false;      /* a complete request waits for its turn */
	while (c->state == CONN_HTTP && !c->http_closing && http_in_flight(c) < HTTP_PIPELINE &&
	       off < c->in.len) {
		struct http_request req;
		int status = 0;
		int hl = http_parse_request(c->in.data + off, c->in.len - off, &lim, &req, &status);
		if (hl == HTTP_INCOMPLETE)
			break;
		if (hl == HTTP_ERROR) {
			http_fail(c, status, http_status_text(status));
			off = c->in.len;
			break;
		}
		size_t total = (size_t)hl + req.content_length;
		if (c->in.len - off < total)
			break;
		if (req.upgrade_websocket && http_in_flight(c)) {
			blocked = true;   /* an upgrade waits for the responses before it */
			break;
		}
		c->http_cur = c->http_next++;
		c->http_closing = !req.keep_alive || worker.stopping;
		forwarded_for(c, &req);
		c->dispatching = true;
		api_handle(c, &req, c->in.data + off + hl, req.content_length);
		c->dispatching = false;
		off += total;
	}
	buf_consume(&c->in, off);
	/* While requests wait, further input waits in the kernel. */
	if (c->state == CONN_HTTP &&
	    (blocked || c->http_closing || http_in_flight(c) >= HTTP_PIPELINE))
		watch(c, EV_READ, false);
	if (c->state == CONN_WS && c->in.len)
		process_input(c);
}

/* ---- WebSocket -------------------------------------------------------------- */

void conn_ws_upgrade(struct conn *c, const struct http_request *req, const char *protocol,
		     bool echo)
{
	const struct http_header *key = http_find_header(req, "Sec-WebSocket-Key");
	char accept[WS_ACCEPT_LEN + 1];
	ws_accept_key(key->value, key->value_len, accept);
	struct buf out = { 0 };
	buf_printf(&out, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
			 "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n", accept);
	if (protocol)
		buf_printf(&out, "Sec-WebSocket-Protocol: %s\r\n", protocol);
	buf_appends(&out, "\r\n");
	conn_send_bytes(c, out.data, out.len);
	buf_free(&out);
	c->state = CONN_WS;
	handshake_done(c);
	c->echo = echo;
	ws_reader_init(&c->ws, worker.cfg->max_message_size, true);
	worker.stats.ws_opened++;
	set_timer(c, worker.cfg->ping_interval, worker.cfg->ping_interval);
}

static void ws_event(struct conn *c, const struct ws_event *ev)
{
	switch (ev->kind) {
	case WS_EV_MESSAGE:
		if (c->state != CONN_WS)
			return;    /* after our close frame, data is ignored */
		if (c->echo) {
			struct sbuf *f = ws_frame_new(ev->opcode, ev->payload, ev->len);
			conn_send(c, f);
			sbuf_unref(f);
		} else if (c->eio) {
			eio_ws_message(c, ev->opcode, (const char *)ev->payload, ev->len);
		} else if (c->session) {
			session_message(c, ev->opcode, (const char *)ev->payload, ev->len);
		}
		return;
	case WS_EV_PING:
		if (c->state == CONN_WS) {
			struct sbuf *f = ws_frame_new(WS_OP_PONG, ev->payload, ev->len);
			conn_send(c, f);
			sbuf_unref(f);
		}
		return;
	case WS_EV_PONG:
		c->ping_sent = false;
		return;
	case WS_EV_CLOSE:
		if (c->state == CONN_WS) {
			/* Echo the peer's code, then close TCP once it is written. */
			uint8_t payload[125];
			size_t n = ev->close_code == WS_CLOSE_NO_STATUS
					   ? 0 : ws_close_payload(payload, ev->close_code, "");
			struct sbuf *f = ws_frame_new(WS_OP_CLOSE, payload, n);
			c->state = CONN_DRAINING;
			enqueue(c, f);
			sbuf_unref(f);
			set_timer(c, CLOSE_GRACE, 0);
		} else {
			c->state = CONN_DRAINING;
			mark_dirty(c);
		}
		return;
	case WS_EV_FAIL:
		log_debug("event=ws_fail conn=%llu code=%d", (unsigned long long)c->id,
			  ev->close_code);
		/* Once closing, the rest of the stream cannot be read: it is dropped
		 * until the peer closes TCP or the close timer ends it. Closing now,
		 * with unread input, would reset the connection and could destroy
		 * our close frame before the peer reads it. */
		if (c->state == CONN_WS)
			conn_ws_close(c, ev->close_code,
				      ev->close_code == WS_CLOSE_TOO_BIG ? "message too big"
				      : ev->close_code == WS_CLOSE_BAD_DATA ? "invalid utf-8"
				      : "protocol error");
		return;
	}
}

static void process_ws(struct conn *c)
{
	size_t off = 0;
	while (c->state == CONN_WS || c->state == CONN_WS_CLOSING) {
		struct ws_event ev;
		bool have = false;
		size_t n = ws_reader_next(&c->ws, (uint8_t *)c->in.data + off, c->in.len - off,
					  &ev, &have);
		off += n;
		if (have) {
			bool fail = ev.kind == WS_EV_FAIL;
			ws_event(c, &ev);
			if (fail) {
				off = c->in.len;   /* nothing after a protocol error is read */
				break;
			}
		}
		if (n == 0 && !have)
			break;
	}
	if (c->state == CONN_DEAD)
		return;
	if (c->state == CONN_DRAINING)
		off = c->in.len;
	buf_consume(&c->in, off);
}

/* ---- reading and timers ----------------------------------------------------- */

static void process_input(struct conn *c)
{
	if (c->state == CONN_HTTP)
		process_http(c);
	else if (c->state == CONN_WS || c->state == CONN_WS_CLOSING)
		process_ws(c);
	else
		c->in.len = 0;
}

/* Idle connections hold no input buffer: reads land in one buffer shared by
 * the worker, and only a partial request or frame is copied to the conn. */
static char read_scratch[4 * READ_CHUNK];

static void on_readable(struct conn *c)
{
	for (int rounds = 0; rounds < 4; rounds++) {
		bool borrowed = c->in.cap == 0;
		if (borrowed)
			c->in = (struct buf){ .data = read_scratch, .cap = sizeof(read_scratch) };
		else
			buf_reserve(&c->in, READ_CHUNK);
		ssize_t n = read(c->fd, c->in.data + c->in.len, c->in.cap - c->in.len);
		if (n > 0) {
			c->in.len += (size_t)n;
			c->last_rx = (int64_t)(ev_now(worker.loop) * 1000);
			process_input(c);
		}
		if (borrowed) {
			struct buf rest = { 0 };
			if (n > 0 && c->state != CONN_DEAD)
				buf_append(&rest, c->in.data, c->in.len);
			c->in = rest;
		} else if (c->in.len == 0) {
			buf_free(&c->in);
		}
		if (n == 0) {
			conn_close(c, "eof");
			return;
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				conn_close(c, "read error");
			return;
		}
		if (c->state == CONN_DEAD || !watching(c, EV_READ) || (size_t)n < READ_CHUNK)
			return;
	}
}

static void io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct conn *c = w->data;
	if (revents & EV_WRITE)
		on_writable(c);
	if ((revents & EV_READ) && c->state != CONN_DEAD && watching(c, EV_READ))
		on_readable(c);
}

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct conn *c = w->data;
	const struct config *cfg = worker.cfg;
	switch (c->state) {
	case CONN_HTTP:
		if (c->http_next == c->http_sent)
			conn_close(c, c->in.len ? "request timeout" : "idle");
		return;
	case CONN_WS: {
		int64_t now = (int64_t)(ev_now(loop) * 1000);
		if (now - c->last_rx >= (int64_t)cfg->ping_timeout * 1000) {
			conn_ws_close(c, WS_CLOSE_GOING_AWAY, "ping timeout");
			return;
		}
		struct sbuf *f = ws_frame_new(WS_OP_PING, NULL, 0);
		conn_send(c, f);
		sbuf_unref(f);
		c->ping_sent = true;
		/* Wake again when either the next ping or the timeout is due. */
		double left = (double)((int64_t)cfg->ping_timeout * 1000 - (now - c->last_rx)) / 1000;
		set_timer(c, MIN((double)cfg->ping_interval, left), cfg->ping_interval);
		return;
	}
	default:
		conn_close(c, "close timeout");
		return;
	}
}

static struct conn *conn_open(int fd, const struct sockaddr_in *sa, enum conn_listener listener)
{
	struct conn *c = xcalloc(1, sizeof(*c));
	c->id = worker.next_conn_id++;
	c->fd = fd;
	c->listener = listener;
	c->state = CONN_HTTP;
	c->ip = sa->sin_addr.s_addr;
	c->connected_at = now_ms();
	c->last_rx = (int64_t)(ev_now(worker.loop) * 1000);
	ev_io_init(&c->io, io_cb, fd, EV_READ);
	ev_init(&c->timer, timer_cb);
	c->io.data = c->timer.data = c;
	ev_io_start(worker.loop, &c->io);
	set_timer(c, worker.cfg->handshake_timeout, 0);
	c->next = conns;
	if (conns)
		conns->prev = c;
	conns = c;
	nconns++;
	map_put_u64(&worker.conns, c->id, c);
	worker.stats.accepted++;
	if (listener == LISTENER_CLIENT)
		handshake_start(c);
	return c;
}

void conn_long_poll(struct conn *c)
{
	handshake_done(c);
}

void conn_adopt(int fd, const void *data, size_t n)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	if (getpeername(fd, (struct sockaddr *)&sa, &len) < 0 || sa.sin_family != AF_INET ||
	    nconns >= (size_t)worker.cfg->max_connections) {
		close(fd);
		return;
	}
	set_nonblock(fd);
	struct conn *c = conn_open(fd, &sa, LISTENER_CLIENT);
	worker.stats.accepted--;   /* counted by the worker that accepted it */
	buf_append(&c->in, data, n);
	c->last_rx = (int64_t)(ev_now(worker.loop) * 1000);
	process_input(c);
	if (c->state != CONN_DEAD && c->in.len == 0)
		buf_free(&c->in);
}

int conn_accept_all(int lfd, enum conn_listener listener)
{
	for (int i = 0; i < 256; i++) {
		struct sockaddr_in sa;
		socklen_t len = sizeof(sa);
		int fd = accept4(lfd, (struct sockaddr *)&sa, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EMFILE && errno != ENFILE)
				return 0;
			log_warn("event=accept_paused connections=%zu error=\"%s\"", nconns,
				 strerror(errno));
			return -1;
		}
		if (nconns >= (size_t)worker.cfg->max_connections) {
			worker.stats.rejected++;
			close(fd);
			continue;
		}
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		conn_open(fd, &sa, listener);
	}
	return 0;
}
