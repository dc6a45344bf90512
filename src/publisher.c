/* publisher.c -- the primary's hand-off of committed messages to Redis. Each
 * message is queued, holding its frame, until Redis has acknowledged its
 * XADD; when the link drops, the queue waits and is sent again, in order,
 * once it is back (an XADD already applied is refused by its ID, harmlessly).
 * Nothing here waits for Redis: commits and deliveries go on whatever its
 * state, and past PUBLISHER_MAX_BYTES the oldest messages are dropped (edges
 * fill those from the primary's history). */
#include "publisher.h"

#include <stdlib.h>
#include <string.h>

#include "cluster.h"
#include "config.h"
#include "hub.h"
#include "log.h"
#include "util.h"

#define PUBLISHER_MAX_BYTES (64u << 20)  /* frames queued at most */
#define PUBLISHER_WINDOW (4u << 20)      /* frames sent, not yet acknowledged: bounds hiredis's
                                            buffer when Redis stops reading */
#define PUBLISHER_DEFAULT_CAP 100        /* stream length for a namespace keeping no history */

struct outgoing {
	struct outgoing *next;
	struct sbuf *frame;
	int64_t seq;
	uint64_t mark;             /* names its XADD's reply (see pb.sent) */
	char **resets;             /* rooms whose stream is deleted first: their epoch begins */
	size_t nresets;
	char room[];
};

static struct {
	bool on;
	struct outgoing *head, **tail;
	struct outgoing *unsent;   /* the first not sent over this connection; NULL: none */
	size_t messages, bytes;    /* queued */
	uint64_t sent, acked;      /* marks: bytes sent so far plus one per message */
	uint64_t dropped;
	bool error_logged;         /* once per connection */
} pb = { .tail = &pb.head };

void publisher_start(void)
{
	pb.on = true;
}

bool publisher_on(void)
{
	return pb.on;
}

size_t publisher_lag(void)
{
	return pb.messages;
}

void publisher_stats(json_t *stats)
{
	if (pb.on)
		json_object_set_new(stats, "cluster_dropped", json_integer((json_int_t)pb.dropped));
}

static struct outgoing *pop(void)
{
	struct outgoing *o = pb.head;
	pb.head = o->next;
	if (!pb.head)
		pb.tail = &pb.head;
	if (pb.unsent == o)
		pb.unsent = o->next;
	pb.messages--;
	pb.bytes -= o->frame->len;
	sbuf_unref(o->frame);
	return o;
}

static void outgoing_free(struct outgoing *o)
{
	for (size_t i = 0; i < o->nresets; i++)
		free(o->resets[i]);
	free(o->resets);
	free(o);
}

static void reset_add(struct outgoing *o, char *room)
{
	o->resets = xrealloc(o->resets, (o->nresets + 1) * sizeof(*o->resets));
	o->resets[o->nresets++] = room;
}

/* The oldest message goes, but not the deletion of a stream it carried: the
 * next one sends it, still before any message of the new epoch. */
static void drop_oldest(void)
{
	struct outgoing *o = pop();
	for (size_t i = 0; i < o->nresets; i++)
		reset_add(pb.head, o->resets[i]);
	o->nresets = 0;
	outgoing_free(o);
	pb.dropped++;
}

static int stream_cap(const char *room)
{
	const struct ns_config *ns = config_namespace(hub.cfg, room);
	return ns && ns->history_size > 0 ? ns->history_size : PUBLISHER_DEFAULT_CAP;
}

static void pump(void);

static void xadd_done(redisAsyncContext *ac, void *reply, void *arg)
{
	redisReply *r = reply;
	uint64_t mark = (uintptr_t)arg;
	if (!r)
		return;                 /* the link dropped: all is sent again once it is back */
	/* Refused for its ID: a resent message Redis already had. */
	if (r->type == REDIS_REPLY_ERROR && !strstr(r->str, "equal or smaller") &&
	    !pb.error_logged) {
		log_error("event=redis_xadd_failed error=\"%s\"", r->str);
		pb.error_logged = true;
	}
	pb.acked = mark;
	while (pb.head && pb.head != pb.unsent && pb.head->mark <= mark)
		outgoing_free(pop());
	pump();
}

static bool send_one(struct outgoing *o)
{
	redisAsyncContext *ac = hub.redis.ac;
	char key[CLUSTER_KEY_MAX];
	for (size_t i = 0; i < o->nresets; i++) {
		cluster_key_log(key, o->resets[i]);
		redisAsyncCommand(ac, NULL, NULL, "DEL %s", key);
	}
	cluster_key_room(key, o->room);
	redisAsyncCommand(ac, NULL, NULL, "PUBLISH %s %b", key, o->frame->data,
			  (size_t)o->frame->len);
	cluster_key_log(key, o->room);
	uint64_t mark = pb.sent + o->frame->len + 1;
	if (redisAsyncCommand(ac, xadd_done, (void *)(uintptr_t)mark,
			      "XADD %s MAXLEN ~ %d %lld-0 f %b", key, stream_cap(o->room),
			      (long long)o->seq, o->frame->data, (size_t)o->frame->len) != REDIS_OK)
		return false;
	o->mark = pb.sent = mark;
	return true;
}

static void pump(void)
{
	while (hub.redis.up && pb.unsent && pb.sent - pb.acked < PUBLISHER_WINDOW &&
	       send_one(pb.unsent))
		pb.unsent = pb.unsent->next;
}

void publisher_message(const char *room, int64_t seq, struct sbuf *frame)
{
	size_t n = strlen(room) + 1;
	struct outgoing *o = xcalloc(1, sizeof(*o) + n);
	memcpy(o->room, room, n);
	o->frame = sbuf_ref(frame);
	o->seq = seq;
	/* Seq 1 opens an epoch (the room's row was just made): a stream left
	 * from an earlier one must not mix with it. */
	if (seq == 1)
		reset_add(o, xstrdup(room));
	*pb.tail = o;
	pb.tail = &o->next;
	if (!pb.unsent)
		pb.unsent = o;
	pb.messages++;
	pb.bytes += frame->len;
	while (pb.bytes > PUBLISHER_MAX_BYTES)
		drop_oldest();
	pump();
}

void publisher_resend(void)
{
	pb.unsent = pb.head;
	pb.acked = pb.sent;
	pb.error_logged = false;
	pump();
}
