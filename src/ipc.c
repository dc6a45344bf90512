/* ipc.c -- framed, typed messages between herald's processes over Unix sockets. */
#include "ipc.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

#define IPC_IDLE_BUF_MAX (1u << 20)  /* an empty input buffer larger than this is freed */

/* ---- encoding ----------------------------------------------------------- */

size_t ipc_begin(struct buf *out, uint16_t type)
{
	size_t start = out->len;
	uint8_t hdr[IPC_HEADER] = { 0 };
	memcpy(hdr + 4, &type, 2);
	buf_append(out, hdr, sizeof(hdr));
	return start;
}

void ipc_put_u8(struct buf *out, uint8_t v)
{
	buf_append(out, &v, 1);
}

void ipc_put_u32(struct buf *out, uint32_t v)
{
	buf_append(out, &v, 4);
}

void ipc_put_u64(struct buf *out, uint64_t v)
{
	buf_append(out, &v, 8);
}

void ipc_put_str(struct buf *out, const char *s, size_t len)
{
	ipc_put_u32(out, (uint32_t)len);
	buf_append(out, s, len);
}

void ipc_put_cstr(struct buf *out, const char *s)
{
	ipc_put_str(out, s ? s : "", s ? strlen(s) : 0);
}

void ipc_end(struct buf *out, size_t start)
{
	uint32_t len = (uint32_t)(out->len - start - IPC_HEADER);
	memcpy(out->data + start, &len, 4);
}

/* ---- decoding ----------------------------------------------------------- */

long ipc_frame_next(const uint8_t *buf, size_t len, uint16_t *type,
		    const uint8_t **payload, uint32_t *plen)
{
	if (len < IPC_HEADER)
		return 0;
	uint32_t n;
	uint16_t t;
	memcpy(&n, buf, 4);
	memcpy(&t, buf + 4, 2);
	if (t == 0 || t >= IPC_TYPE_MAX || n > IPC_MAX_PAYLOAD || buf[6] || buf[7])
		return -1;
	if (len - IPC_HEADER < n)
		return 0;
	*type = t;
	*payload = buf + IPC_HEADER;
	*plen = n;
	return (long)(IPC_HEADER + n);
}

void ipc_reader_init(struct ipc_reader *r, const uint8_t *payload, size_t len)
{
	r->p = payload;
	r->left = len;
	r->err = false;
}

static const uint8_t *take(struct ipc_reader *r, size_t n)
{
	if (r->err || r->left < n) {
		r->err = true;
		return NULL;
	}
	const uint8_t *p = r->p;
	r->p += n;
	r->left -= n;
	return p;
}

uint8_t ipc_get_u8(struct ipc_reader *r)
{
	const uint8_t *p = take(r, 1);
	return p ? *p : 0;
}

uint32_t ipc_get_u32(struct ipc_reader *r)
{
	uint32_t v = 0;
	const uint8_t *p = take(r, 4);
	if (p)
		memcpy(&v, p, 4);
	return v;
}

uint64_t ipc_get_u64(struct ipc_reader *r)
{
	uint64_t v = 0;
	const uint8_t *p = take(r, 8);
	if (p)
		memcpy(&v, p, 8);
	return v;
}

const char *ipc_get_bytes(struct ipc_reader *r, size_t *len)
{
	uint32_t n = ipc_get_u32(r);
	const uint8_t *p = take(r, n);
	*len = p ? n : 0;
	return p ? (const char *)p : "";
}

void ipc_get_str(struct ipc_reader *r, char *out, size_t n)
{
	size_t len;
	const char *s = ipc_get_bytes(r, &len);
	if (len >= n || memchr(s, '\0', len)) {
		r->err = true;
		len = 0;
	}
	memcpy(out, s, len);
	out[len] = '\0';
}

bool ipc_reader_done(const struct ipc_reader *r)
{
	return !r->err && r->left == 0;
}

/* ---- channels ----------------------------------------------------------- */

static void chan_fail(struct ipc_chan *ch)
{
	ipc_close_fn cb = ch->on_close;
	ipc_chan_close(ch);
	if (cb)
		cb(ch);
}

static void chan_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct ipc_chan *ch = w->data;
	for (;;) {
		buf_reserve(&ch->in, 65536);
		ssize_t n = read(ch->fd, ch->in.data + ch->in.len, ch->in.cap - ch->in.len);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
			chan_fail(ch);
			return;
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		ch->in.len += (size_t)n;
		size_t off = 0;
		for (;;) {
			uint16_t type;
			const uint8_t *payload;
			uint32_t plen;
			long fl = ipc_frame_next((uint8_t *)ch->in.data + off, ch->in.len - off,
						 &type, &payload, &plen);
			if (fl < 0) {
				log_error("event=ipc_bad_frame fd=%d", ch->fd);
				chan_fail(ch);
				return;
			}
			if (fl == 0)
				break;
			struct ipc_reader r;
			ipc_reader_init(&r, payload, plen);
			ch->on_msg(ch, type, &r);
			if (ch->fd < 0)
				return;     /* the handler closed the channel */
			off += (size_t)fl;
		}
		buf_consume(&ch->in, off);
		if ((size_t)n < 65536 / 2)
			break;
	}
	/* One large frame (a listing of every connection) leaves no big buffer behind. */
	if (ch->in.len == 0 && ch->in.cap > IPC_IDLE_BUF_MAX)
		buf_free(&ch->in);
}

static void chan_write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	ipc_chan_flush(w->data);
}

void ipc_chan_open(struct ipc_chan *ch, struct ev_loop *loop, int fd, ipc_msg_fn on_msg,
		   ipc_close_fn on_close, void *data)
{
	memset(ch, 0, sizeof(*ch));
	ch->fd = fd;
	ch->loop = loop;
	ch->on_msg = on_msg;
	ch->on_close = on_close;
	ch->data = data;
	set_nonblock(fd);
	ev_io_init(&ch->rio, chan_read_cb, fd, EV_READ);
	ev_io_init(&ch->wio, chan_write_cb, fd, EV_WRITE);
	ch->rio.data = ch->wio.data = ch;
	ev_io_start(loop, &ch->rio);
}

void ipc_chan_close(struct ipc_chan *ch)
{
	if (ch->fd < 0)
		return;
	ev_io_stop(ch->loop, &ch->rio);
	ev_io_stop(ch->loop, &ch->wio);
	close(ch->fd);
	ch->fd = -1;
	for (size_t i = 0; i < ch->outq_len; i++)
		sbuf_unref(ch->outq[i]);
	free(ch->outq);
	ch->outq = NULL;
	ch->outq_len = ch->outq_cap = ch->out_off = 0;
	buf_free(&ch->in);
}

void ipc_chan_send_shared(struct ipc_chan *ch, struct sbuf *frame)
{
	if (ch->fd < 0)
		return;
	xgrow(&ch->outq, &ch->outq_cap, ch->outq_len + 1, sizeof(*ch->outq));
	ch->outq[ch->outq_len++] = sbuf_ref(frame);
	if (!ev_is_active(&ch->wio))
		ev_io_start(ch->loop, &ch->wio);
}

void ipc_chan_send(struct ipc_chan *ch, struct buf *b)
{
	struct sbuf *s = sbuf_from(b->data, b->len);
	ipc_chan_send_shared(ch, s);
	sbuf_unref(s);
	buf_reset(b);
}

void ipc_chan_flush(struct ipc_chan *ch)
{
	while (ch->fd >= 0 && ch->outq_len > 0) {
		struct iovec iov[64];
		size_t n = MIN(ch->outq_len, ARRAY_SIZE(iov));
		for (size_t i = 0; i < n; i++) {
			iov[i].iov_base = ch->outq[i]->data;
			iov[i].iov_len = ch->outq[i]->len;
		}
		iov[0].iov_base = (char *)iov[0].iov_base + ch->out_off;
		iov[0].iov_len -= ch->out_off;
		ssize_t w = writev(ch->fd, iov, (int)n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return;     /* the write watcher stays on */
			chan_fail(ch);
			return;
		}
		size_t done = 0, left = (size_t)w + ch->out_off;
		while (done < ch->outq_len && left >= ch->outq[done]->len) {
			left -= ch->outq[done]->len;
			sbuf_unref(ch->outq[done++]);
		}
		memmove(ch->outq, ch->outq + done, (ch->outq_len - done) * sizeof(*ch->outq));
		ch->outq_len -= done;
		ch->out_off = left;
	}
	if (ch->fd >= 0)
		ev_io_stop(ch->loop, &ch->wio);
}

int ipc_write_all(int fd, const struct buf *b)
{
	size_t off = 0;
	while (off < b->len) {
		ssize_t w = write(fd, b->data + off, b->len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		off += (size_t)w;
	}
	return 0;
}

static socklen_t abstract_addr(const char *name, struct sockaddr_un *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	size_t n = MIN(strlen(name), sizeof(sa->sun_path) - 2);
	memcpy(sa->sun_path + 1, name, n);
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
}

int ipc_listen(const char *name)
{
	struct sockaddr_un sa;
	socklen_t len = abstract_addr(name, &sa);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&sa, len) < 0 || listen(fd, 128) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

int ipc_connect(const char *name)
{
	struct sockaddr_un sa;
	socklen_t len = abstract_addr(name, &sa);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sa, len) < 0) {
		close(fd);
		return -1;
	}
	set_nonblock(fd);
	return fd;
}

bool ipc_peer_trusted(int fd)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	return getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 &&
	       cred.uid == getuid();
}
