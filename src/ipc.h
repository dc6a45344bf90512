/* ipc.h -- framed, typed messages between herald's processes over Unix sockets.
 *
 * A frame is an 8-byte header (payload length, type, both little endian as
 * on the host) and a payload encoded field by field with ipc_put_* and read
 * back with ipc_get_*, which check every length. Bump IPC_VERSION whenever a
 * message's fields change: peers compare it at hello. */
#ifndef HERALD_IPC_H
#define HERALD_IPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <ev.h>
#include "buf.h"

#define IPC_VERSION 3
#define IPC_HEADER 8
#define IPC_MAX_PAYLOAD (16u * 1024 * 1024)

enum ipc_type {
	/* any direction */
	IPC_HELLO = 1,       /* u32 version, u32 role, u32 slot, u32 pid */
	/* master -> child */
	IPC_RELOAD,          /* re-read the configuration file */
	/* worker -> hub */
	IPC_ROOM_JOIN,       /* str room: the worker has subscribers in room */
	IPC_ROOM_LEAVE,      /* str room */
	IPC_PUBLISH,         /* u64 req, u32 n, n x str room, str event, str data,
	                        str idem_key, u8 from_client: answered with IPC_REPLY */
	IPC_CONN_OPEN,       /* u64 conn, str user, str addr, u64 connected_at_ms */
	IPC_CONN_CLOSE,      /* u64 conn */
	IPC_CONN_ROOM,       /* u64 conn, str room, u8 joined */
	IPC_WORKER_STATS,    /* str json: the worker's counters */
	IPC_REQUEST,         /* u64 req, str json {"op": ...}: API calls answered by the hub */
	/* hub -> worker */
	IPC_ROOM_STATE,      /* str room, str epoch, u64 last_seq: reply to ROOM_JOIN
	                        (epoch "" and 0: the room has had no message) */
	IPC_DELIVER,         /* str room, u64 seq, str epoch, u64 gpos, u32 event_off,
	                        u32 event_len, u32 data_off, u32 data_len, u32 ts_off,
	                        str frame payload (encoded event; the offsets point into it) */
	IPC_KICK,            /* u64 conn, u32 close code, str reason */
	IPC_REPLY,           /* u64 req, u32 status, str json */
	IPC_HUB_STATUS,      /* u64 connections (all workers), u8 db_writable */
	/* courier -> hub (the courier also sends IPC_WORKER_STATS) */
	IPC_WEBHOOK_RESULT,  /* u64 delivery, u32 attempts before this one, u32 http status
	                        (0: no response), u32 retry_after seconds (0: none),
	                        str error, u64 started_ms, u32 duration_ms */
	/* hub -> courier */
	IPC_WEBHOOK_SETTLED, /* u64 delivery, str endpoint, u8 enabled, u32 failures,
	                        u64 paused_until_ms: the result is committed */
	IPC_WEBHOOK_WAKE,    /* u8 what (WEBHOOK_WAKE_*): look at the queue now */
	IPC_TYPE_MAX
};

enum ipc_role { IPC_ROLE_MASTER = 1, IPC_ROLE_HUB, IPC_ROLE_WORKER, IPC_ROLE_COURIER };

/* IPC_WEBHOOK_WAKE: new deliveries are due, or endpoints changed (re-read them). */
enum { WEBHOOK_WAKE_DUE = 1, WEBHOOK_WAKE_ENDPOINTS = 2 };

/* ---- encoding ----------------------------------------------------------- */

/* Starts a frame of type in out; fields follow; ipc_end fills in the length. */
size_t ipc_begin(struct buf *out, uint16_t type);
void ipc_put_u8(struct buf *out, uint8_t v);
void ipc_put_u32(struct buf *out, uint32_t v);
void ipc_put_u64(struct buf *out, uint64_t v);
void ipc_put_str(struct buf *out, const char *s, size_t len);   /* u32 len + bytes */
void ipc_put_cstr(struct buf *out, const char *s);              /* NULL as "" */
void ipc_end(struct buf *out, size_t start);

/* ---- decoding ----------------------------------------------------------- */

/* Finds the first complete frame in buf[0..len). Returns its total length
 * (header + payload) with *type and the payload set; 0 when incomplete; -1
 * when the header is invalid (unknown type or oversized payload). */
long ipc_frame_next(const uint8_t *buf, size_t len, uint16_t *type,
		    const uint8_t **payload, uint32_t *plen);

/* Reads fields in order; any overrun sets err and yields zeros/empty strings.
 * Strings point into the payload and are not NUL-terminated: use the length
 * (ipc_get_str copies into a NUL-terminated string when it fits, else err). */
struct ipc_reader {
	const uint8_t *p;
	size_t left;
	bool err;
};
void ipc_reader_init(struct ipc_reader *r, const uint8_t *payload, size_t len);
uint8_t ipc_get_u8(struct ipc_reader *r);
uint32_t ipc_get_u32(struct ipc_reader *r);
uint64_t ipc_get_u64(struct ipc_reader *r);
const char *ipc_get_bytes(struct ipc_reader *r, size_t *len);
/* Copies a string field into out (size n, NUL-terminated); err if it does not fit
 * or contains a NUL byte. */
void ipc_get_str(struct ipc_reader *r, char *out, size_t n);
/* True when every field was read and nothing is left over. */
bool ipc_reader_done(const struct ipc_reader *r);

/* ---- channels ----------------------------------------------------------- */

/* One end of a stream socket carrying frames, driven by a libev loop. Output
 * is queued as shared buffers, so one encoded frame can go to many channels. */
struct ipc_chan;
typedef void (*ipc_msg_fn)(struct ipc_chan *ch, uint16_t type, struct ipc_reader *r);
typedef void (*ipc_close_fn)(struct ipc_chan *ch);

struct ipc_chan {
	int fd;
	struct ev_loop *loop;
	ev_io rio, wio;
	struct buf in;
	struct sbuf **outq;      /* queued frames */
	size_t outq_len, outq_cap, out_off;
	ipc_msg_fn on_msg;
	ipc_close_fn on_close;   /* EOF, error or protocol violation; the channel is already closed */
	void *data;              /* owner's */
	bool closing;
};

/* Takes ownership of fd (made non-blocking) and starts reading. */
void ipc_chan_open(struct ipc_chan *ch, struct ev_loop *loop, int fd, ipc_msg_fn on_msg,
		   ipc_close_fn on_close, void *data);
/* Stops watchers, closes fd, drops queued output. Safe to call twice. */
void ipc_chan_close(struct ipc_chan *ch);
/* Queues the frame in b (as built by ipc_begin/ipc_end) and resets b. */
void ipc_chan_send(struct ipc_chan *ch, struct buf *b);
/* Queues a shared frame, taking a reference. */
void ipc_chan_send_shared(struct ipc_chan *ch, struct sbuf *frame);
/* Writes what it can now (otherwise the write watcher finishes). */
void ipc_chan_flush(struct ipc_chan *ch);
/* A listening Unix socket in the abstract namespace (no file to clean up),
 * and a non-blocking connect to it. Return the fd or -1. */
int ipc_listen(const char *name);
int ipc_connect(const char *name);
/* True when the peer of a Unix socket runs as our own user. */
bool ipc_peer_trusted(int fd);

/* Blocking write of a whole frame, for use before a loop runs (master, hello). */
int ipc_write_all(int fd, const struct buf *b);

#endif
