/* wsclient.c -- a small WebSocket client: non-blocking connect and upgrade,
 * masked frames out, ws_reader in; blocking wrappers built on poll(). */
#include "wsclient.h"

#include <errno.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sodium.h>

#include "util.h"

#define WSCLIENT_MAX_MESSAGE (16u << 20)
#define WSCLIENT_READ_CHUNK (16u << 10)
#define WSCLIENT_MAX_HEAD (16u << 10)
#define WSCLIENT_CLOSE_WAIT_MS 1000

/* ---- HTTP response head ---------------------------------------------------- */

static bool name_is(const char *p, size_t n, const char *name)
{
	return n == strlen(name) && strncasecmp(p, name, n) == 0;
}

int wsclient_parse_response(const char *p, size_t n, struct wsclient_response *r)
{
	memset(r, 0, sizeof(*r));
	const char *end = n ? memmem(p, n, "\r\n\r\n", 4) : NULL;
	if (!end)
		return n > WSCLIENT_MAX_HEAD ? -1 : -2;
	if (end - p < 12 || memcmp(p, "HTTP/1.", 7) != 0 || p[8] != ' ')
		return -1;
	for (int i = 9; i < 12; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		r->status = r->status * 10 + (p[i] - '0');
	}
	const char *line = memchr(p, '\n', (size_t)(end - p));
	while (line && line < end) {
		line++;
		const char *eol = memchr(line, '\r', (size_t)(end + 2 - line));
		const char *colon = memchr(line, ':', (size_t)(eol - line));
		if (!colon)
			return -1;
		size_t nlen = (size_t)(colon - line);
		const char *v = colon + 1, *ve = eol;
		while (v < ve && (*v == ' ' || *v == '\t'))
			v++;
		while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
			ve--;
		if (name_is(line, nlen, "Content-Length")) {
			if (v == ve)
				return -1;
			for (const char *d = v; d < ve; d++) {
				if (*d < '0' || *d > '9' || r->content_length > (SIZE_MAX - 9) / 10)
					return -1;
				r->content_length = r->content_length * 10 + (size_t)(*d - '0');
			}
		} else if (name_is(line, nlen, "Connection")) {
			r->close = ve - v == 5 && strncasecmp(v, "close", 5) == 0;
		} else if (name_is(line, nlen, "Sec-WebSocket-Accept")) {
			r->accept = v;
			r->accept_len = (size_t)(ve - v);
		}
		line = eol + 1 < end ? eol + 1 : NULL;
	}
	return (int)(end - p) + 4;
}

/* ---- the connection -------------------------------------------------------- */

int wsclient_start(struct wsclient *w, const struct sockaddr_in *dst,
		   const struct sockaddr_in *src, const char *path, const char *host)
{
	memset(w, 0, sizeof(*w));
	w->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (w->fd < 0)
		return -1;
	int one = 1;
	setsockopt(w->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (src) {
		/* Defers the port choice to connect(), which may then reuse a port
		 * for other destinations: many clients per source address. */
		setsockopt(w->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
		if (bind(w->fd, (const struct sockaddr *)src, sizeof(*src)) < 0)
			goto fail;
	}
	if (connect(w->fd, (const struct sockaddr *)dst, sizeof(*dst)) < 0 && errno != EINPROGRESS)
		goto fail;

	uint8_t raw[16];
	randombytes_buf(raw, sizeof(raw));
	sodium_bin2base64(w->key, sizeof(w->key), raw, sizeof(raw), sodium_base64_VARIANT_ORIGINAL);
	char hostbuf[32];
	if (!host) {
		char ip[INET_ADDRSTRLEN];
		inet_ntop(AF_INET, &dst->sin_addr, ip, sizeof(ip));
		snprintf(hostbuf, sizeof(hostbuf), "%s:%u", ip, ntohs(dst->sin_port));
		host = hostbuf;
	}
	buf_printf(&w->out, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
			    "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
			    "Sec-WebSocket-Version: 13\r\n\r\n", path, host, w->key);
	ws_reader_init(&w->reader, WSCLIENT_MAX_MESSAGE, false);
	w->state = WSCLIENT_CONNECTING;
	return 0;
fail:;
	int e = errno;
	close(w->fd);
	w->fd = -1;
	errno = e;
	return -1;
}

void wsclient_free(struct wsclient *w)
{
	if (w->fd >= 0)
		close(w->fd);
	w->fd = -1;
	buf_free(&w->in);
	buf_free(&w->out);
	w->in_off = 0;
	ws_reader_free(&w->reader);
	w->state = WSCLIENT_CLOSED;
}

int wsclient_flush(struct wsclient *w)
{
	size_t off = 0;
	int rc = 1;
	while (off < w->out.len) {
		ssize_t n = send(w->fd, w->out.data + off, w->out.len - off, MSG_NOSIGNAL);
		if (n > 0) {
			off += (size_t)n;
		} else if (n < 0 && errno == EINTR) {
			continue;
		} else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			rc = 0;
			break;
		} else {
			w->error = strerror(errno);   /* glibc: a constant string */
			rc = -1;
			break;
		}
	}
	buf_consume(&w->out, off);
	if (rc == 1 && w->state == WSCLIENT_CONNECTING)
		w->state = WSCLIENT_UPGRADING;
	return rc;
}

ssize_t wsclient_read(struct wsclient *w)
{
	/* Everything before in_off was handed out already: drop it now. */
	if (w->in_off) {
		buf_consume(&w->in, w->in_off);
		w->in_off = 0;
	}
	buf_reserve(&w->in, WSCLIENT_READ_CHUNK);
	for (;;) {
		ssize_t n = recv(w->fd, w->in.data + w->in.len, w->in.cap - w->in.len, 0);
		if (n > 0) {
			w->in.len += (size_t)n;
			return n;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (!w->eof && w->state != WSCLIENT_CLOSED) {
			w->close_code = 1006;
			w->error = n == 0 ? "connection closed by peer" : strerror(errno);
		}
		w->eof = true;
		return -1;
	}
}

void wsclient_queue(struct wsclient *w, int opcode, const void *p, size_t n)
{
	ws_frame_append_masked(&w->out, opcode, p, n);
}

static void queue_close(struct wsclient *w, int code, const char *reason)
{
	uint8_t payload[125];
	size_t n = code == WS_CLOSE_NO_STATUS ? 0 : ws_close_payload(payload, code, reason);
	wsclient_queue(w, WS_OP_CLOSE, payload, n);
}

/* Consumes the 101 response. 1 when open, 0 when more input is needed, -1
 * when refused or malformed (the head stays in the buffer for messages). */
static int handshake(struct wsclient *w)
{
	struct wsclient_response r;
	int n = wsclient_parse_response(w->in.data + w->in_off, w->in.len - w->in_off, &r);
	if (n == -2)
		return w->eof ? -1 : 0;
	if (n < 0) {
		w->error = "malformed HTTP response";
		return -1;
	}
	if (r.status != 101) {
		w->http_status = r.status;
		w->error = "upgrade refused";
		return -1;
	}
	char expect[WS_ACCEPT_LEN + 1];
	ws_accept_key(w->key, strlen(w->key), expect);
	if (!r.accept || r.accept_len != WS_ACCEPT_LEN || memcmp(r.accept, expect, WS_ACCEPT_LEN) != 0) {
		w->error = "wrong Sec-WebSocket-Accept";
		return -1;
	}
	w->in_off += (size_t)n;
	w->state = WSCLIENT_OPEN;
	return 1;
}

int wsclient_next(struct wsclient *w, struct wsclient_msg *msg)
{
	if (w->state == WSCLIENT_CONNECTING || w->state == WSCLIENT_UPGRADING) {
		int h = handshake(w);
		if (h <= 0)
			return h;
	}
	while (w->state == WSCLIENT_OPEN && w->in_off < w->in.len) {
		struct ws_event ev;
		bool have = false;
		size_t used = ws_reader_next(&w->reader, (uint8_t *)w->in.data + w->in_off,
					     w->in.len - w->in_off, &ev, &have);
		w->in_off += used;
		if (!have) {
			if (used == 0)
				return 0;
			continue;
		}
		switch (ev.kind) {
		case WS_EV_MESSAGE:
			msg->opcode = ev.opcode;
			msg->data = (const char *)ev.payload;
			msg->len = ev.len;
			return 1;
		case WS_EV_PING:
			wsclient_queue(w, WS_OP_PONG, ev.payload, ev.len);
			break;
		case WS_EV_PONG:
			break;
		case WS_EV_CLOSE:
			w->close_code = ev.close_code;
			w->error = "closed by the server";
			queue_close(w, ev.close_code, NULL);
			w->state = WSCLIENT_CLOSED;
			return -1;
		case WS_EV_FAIL:
			w->close_code = ev.close_code;
			w->error = "protocol error from the server";
			queue_close(w, ev.close_code, "protocol error");
			w->state = WSCLIENT_CLOSED;
			return -1;
		}
	}
	return w->state == WSCLIENT_CLOSED || w->eof ? -1 : 0;
}

/* ---- blocking use ---------------------------------------------------------- */

/* Waits for events on fd until deadline (mono ms, -1: none). 1 when ready,
 * 0 on timeout or signal, -1 on error. */
static int wait_fd(int fd, short events, int64_t deadline)
{
	int timeout = -1;
	if (deadline >= 0)
		timeout = (int)MAX(deadline - mono_ms(), 0);
	struct pollfd p = { .fd = fd, .events = events };
	int n = poll(&p, 1, timeout);
	if (n < 0)
		return errno == EINTR ? 0 : -1;
	return n > 0;
}

/* Writes everything queued before deadline. 0 or -1. */
static int flush_wait(struct wsclient *w, int64_t deadline)
{
	for (;;) {
		int f = wsclient_flush(w);
		if (f != 0)
			return f > 0 ? 0 : -1;
		int ready = wait_fd(w->fd, POLLOUT, deadline);
		if (ready < 0 || (ready == 0 && deadline >= 0 && mono_ms() >= deadline)) {
			w->error = "timed out writing";
			return -1;
		}
	}
}

/* Waits for a refused upgrade's body (it explains why) and formats it. */
static void refusal_message(struct wsclient *w, int64_t deadline, char *err, size_t errlen)
{
	struct wsclient_response r;
	int n;
	while ((n = wsclient_parse_response(w->in.data + w->in_off, w->in.len - w->in_off, &r)) > 0 &&
	       w->in.len - w->in_off - (size_t)n < r.content_length &&
	       wait_fd(w->fd, POLLIN, deadline) > 0 && wsclient_read(w) > 0)
		;
	if (n > 0)
		snprintf(err, errlen, "HTTP %d: %.*s", r.status,
			 (int)MIN(r.content_length, w->in.len - w->in_off - (size_t)n),
			 w->in.data + w->in_off + n);
	else
		snprintf(err, errlen, "%s", w->error);
}

int wsclient_open(struct wsclient *w, const char *hostport, const char *path,
		  int timeout_ms, char *err, size_t errlen)
{
	struct sockaddr_in dst;
	if (parse_hostport(hostport, &dst) < 0) {
		snprintf(err, errlen, "bad address '%s' (expected IPv4 host:port)", hostport);
		return -1;
	}
	if (dst.sin_addr.s_addr == htonl(INADDR_ANY))
		dst.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (wsclient_start(w, &dst, NULL, path, NULL) < 0) {
		snprintf(err, errlen, "%s: %s", hostport, strerror(errno));
		return -1;
	}
	int64_t deadline = mono_ms() + timeout_ms;
	if (flush_wait(w, deadline) < 0) {
		snprintf(err, errlen, "%s: %s", hostport, errno ? strerror(errno) : w->error);
		goto fail;
	}
	for (;;) {
		int h = handshake(w);
		if (h > 0)
			return 0;
		if (h < 0) {
			refusal_message(w, deadline, err, errlen);
			goto fail;
		}
		if (wait_fd(w->fd, POLLIN, deadline) <= 0) {
			snprintf(err, errlen, "%s: no answer to the upgrade", hostport);
			goto fail;
		}
		wsclient_read(w);    /* at EOF, handshake() fails next */
	}
fail:
	wsclient_free(w);
	return -1;
}

int wsclient_send_text(struct wsclient *w, const char *p, size_t n)
{
	if (w->state != WSCLIENT_OPEN)
		return -1;
	wsclient_queue(w, WS_OP_TEXT, p, n);
	return flush_wait(w, -1);
}

int wsclient_recv(struct wsclient *w, struct wsclient_msg *msg, int timeout_ms)
{
	int64_t deadline = timeout_ms >= 0 ? mono_ms() + timeout_ms : -1;
	for (;;) {
		int r = wsclient_next(w, msg);
		/* Pongs and the close echo go out before anything else happens. */
		if (w->out.len && w->fd >= 0)
			flush_wait(w, mono_ms() + WSCLIENT_CLOSE_WAIT_MS);
		if (r != 0)
			return r;
		int ready = wait_fd(w->fd, POLLIN, deadline);
		if (ready <= 0)
			return ready;
		wsclient_read(w);    /* at EOF, wsclient_next returns -1 next */
	}
}

void wsclient_close(struct wsclient *w, int code, const char *reason)
{
	if (w->fd >= 0 && w->state == WSCLIENT_OPEN) {
		int64_t deadline = mono_ms() + WSCLIENT_CLOSE_WAIT_MS;
		queue_close(w, code, reason);
		w->state = WSCLIENT_CLOSED;
		/* The server answers with its own close, then ends the TCP
		 * connection: read until then, ignoring late messages. */
		if (flush_wait(w, deadline) == 0) {
			while (wait_fd(w->fd, POLLIN, deadline) > 0 && wsclient_read(w) >= 0)
				w->in_off = w->in.len;
		}
	}
	wsclient_free(w);
}
