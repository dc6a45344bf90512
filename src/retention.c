/* retention.c -- pruning and eviction. Pruning deletes, in small bounded
 * steps between commits, the messages outside each room's retention and the
 * idempotency keys past their window; eviction frees the rooms nothing
 * holds in memory (the database keeps their state). */
#include "retention.h"

#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "registry.h"
#include "util.h"

#define EVICT_INTERVAL 5.0      /* seconds between sweeps of idle rooms */
#define PRUNE_INTERVAL 1.0      /* seconds between pruning ticks... */
#define PRUNE_BEHIND 0.01       /* ...and while there is a backlog */
#define PRUNE_STEP 500          /* rows deleted per room per visit */
#define PRUNE_BUDGET 5000       /* messages (and keys) deleted per tick */
#define PRUNE_ROOMS 256         /* rooms the walk visits per tick */
#define PRUNE_HOT 16            /* rooms with a backlog, visited every tick */

static struct {
	ev_timer prune_timer, evict_timer;
	int64_t prune_cursor;       /* id of the last room the pruning walk visited */
	struct hub_room *prune_hot[PRUNE_HOT];  /* loaded rooms with a backlog */
	size_t nprune_hot;
} rt;

/* Frees the rooms nothing holds: no worker wants them, no connection is in
 * them, no publish in flight names them (held ones included, so nothing
 * uncommitted is left in memory), no throttle window is open and pruning is
 * not behind on them.
 * hub_room_get loads them again from the database, as they were. */
static void evict_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	int64_t mono = mono_ms();
	struct map_iter it = { 0 };
	struct map_entry *e;
	while ((e = map_next(&hub.rooms, &it))) {
		struct hub_room *r = e->val;
		if (r->workers || r->pubs || r->prune_hot || r->window_end > mono ||
		    registry_subscribers(r->name))
			continue;
		hub_room_free(r);
	}
}

/* Deletes, in small steps between commits, what falls outside a room's
 * retention: more than history_size messages, or older than history_ttl.
 * A walk visits every stored room in turn, by id, whether loaded or not; a
 * loaded room that had more to delete than one visit takes (it receives
 * more than PRUNE_STEP messages a tick) is visited again every tick until
 * it has caught up, without holding the walk up. Each tick is bounded, so
 * publishes never wait long behind it; ticks come quickly while behind. */
struct prune_pass {
	int budget;               /* rows this tick may still delete */
	int64_t cursor;           /* id of the last room the walk visited */
	bool behind;              /* some room had more to delete */
	bool failed;
};

/* One visit: returns whether the room has more to delete. */
static bool prune_visit(struct prune_pass *pp, int64_t id, const char *name, int64_t last_seq)
{
	const struct ns_config *ns = config_namespace(hub.cfg, name);
	int limit = MIN(PRUNE_STEP, pp->budget);
	if (!ns || limit <= 0)
		return false;
	char cutoff[UTIL_TS_LEN + 1];
	if (ns->history_ttl > 0)
		ts_format(now_ms() - (int64_t)ns->history_ttl * 1000, cutoff);
	int n = store_prune_room(hub.store, id, last_seq - ns->history_size,
				 ns->history_ttl > 0 ? cutoff : NULL, limit);
	if (n < 0) {
		pp->failed = true;
		return false;
	}
	pp->budget -= n;
	pp->behind |= n >= limit;
	return n >= limit;
}

static int prune_walk_room(int64_t id, const char *name, int64_t last_seq, void *arg)
{
	struct prune_pass *pp = arg;
	pp->cursor = id;
	if (prune_visit(pp, id, name, last_seq) && rt.nprune_hot < PRUNE_HOT) {
		struct hub_room *r = map_get(&hub.rooms, name, strlen(name));
		if (r && !r->prune_hot) {
			r->prune_hot = true;
			rt.prune_hot[rt.nprune_hot++] = r;
		}
	}
	return pp->budget <= 0 || pp->failed;
}

static void prune_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct prune_pass pp = { .budget = PRUNE_BUDGET, .cursor = rt.prune_cursor };
	if (store_begin(hub.store) < 0)
		return;
	for (size_t i = 0; i < rt.nprune_hot;) {
		struct hub_room *r = rt.prune_hot[i];
		if (prune_visit(&pp, r->id, r->name, r->last_seq)) {
			i++;
		} else {
			r->prune_hot = false;
			rt.prune_hot[i] = rt.prune_hot[--rt.nprune_hot];
		}
	}
	int rooms = pp.failed ? -1 : store_rooms_after(hub.store, rt.prune_cursor, PRUNE_ROOMS,
							prune_walk_room, &pp);
	int keys = rooms < 0 || pp.failed ? -1 : store_prune_idem(hub.store, now_ms(), PRUNE_BUDGET);
	if (keys < 0 || store_commit(hub.store) < 0) {
		log_error("event=prune_failed error=\"%s\"", store_errmsg(hub.store));
		store_rollback(hub.store);
		return;
	}
	/* Past the last room: the next round starts from the first. */
	rt.prune_cursor = rooms < PRUNE_ROOMS && pp.budget > 0 ? 0 : pp.cursor;
	w->repeat = pp.behind || keys >= PRUNE_BUDGET ? PRUNE_BEHIND : PRUNE_INTERVAL;
	ev_timer_again(loop, w);
}

void retention_start(void)
{
	ev_timer_init(&rt.prune_timer, prune_cb, PRUNE_INTERVAL, PRUNE_INTERVAL);
	ev_timer_start(hub.loop, &rt.prune_timer);
	ev_timer_init(&rt.evict_timer, evict_cb, EVICT_INTERVAL, EVICT_INTERVAL);
	ev_timer_start(hub.loop, &rt.evict_timer);
}
