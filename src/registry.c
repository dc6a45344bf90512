/* registry.c -- the hub's view of every client connection, reported by the
 * workers: the limits per address and per user hold over all workers, and
 * the API lists and kicks connections wherever they are. */
#include "registry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>

#include "cluster.h"
#include "config.h"
#include "map.h"
#include "proto.h"
#include "util.h"
#include "ws.h"

/* A client connection, as reported by its worker. */
struct hub_conn {
	uint64_t id;
	int slot;
	char *user;                /* NULL when anonymous */
	char addr[INET6_ADDRSTRLEN];
	int64_t connected_at;
	char **rooms;              /* each counted in room_subs */
	size_t nrooms, cap;
};

static struct map conns;           /* id -> hub_conn */
static struct map counts;          /* see count_add */
static size_t users;               /* distinct users connected */
/* Subscribers per room name, over all workers. Kept by name, so a room that
 * has had no message yet costs the hub no room of its own. */
static struct map room_subs;

/* Connections per user ("u" + name) and per address ("a" + address). */
static intptr_t count_add(char kind, const char *name, int delta)
{
	char key[300];
	int n = snprintf(key, sizeof(key), "%c%s", kind, name);
	size_t len = (size_t)MIN(n, (int)sizeof(key) - 1);
	intptr_t v = (intptr_t)map_get(&counts, key, len) + delta;
	if (v > 0)
		map_put(&counts, key, len, (void *)v);
	else
		map_del(&counts, key, len);
	return v;
}

/* A user's connections went up or down by one: its first and its last one
 * change the users of this node, in the cluster view too. */
static intptr_t user_add(const char *user, int delta)
{
	intptr_t v = count_add('u', user, delta);
	if ((delta > 0 && v == 1) || (delta < 0 && v == 0)) {
		users += (size_t)delta;
		cluster_node_user(&hub.redis, hub.ctx->cfg->node_name, user, delta > 0);
	}
	return v;
}

static void send_kick(int slot, uint64_t id, int code, const char *reason)
{
	if (!hub.links[slot])
		return;
	struct buf b = { 0 };
	size_t m = ipc_begin(&b, IPC_KICK);
	ipc_put_u64(&b, id);
	ipc_put_u32(&b, (uint32_t)code);
	ipc_put_cstr(&b, reason);
	ipc_end(&b, m);
	ipc_chan_send(&hub.links[slot]->ch, &b);
	buf_free(&b);
}

static void subs_add(const char *room, intptr_t delta)
{
	size_t len = strlen(room);
	intptr_t n = (intptr_t)map_get(&room_subs, room, len) + delta;
	if (n > 0)
		map_put(&room_subs, room, len, (void *)n);
	else
		map_del(&room_subs, room, len);
}

static void conn_room(struct hub_conn *hc, const char *room, bool joined)
{
	for (size_t i = 0; i < hc->nrooms; i++) {
		if (strcmp(hc->rooms[i], room) == 0) {
			if (!joined) {
				subs_add(room, -1);
				free(hc->rooms[i]);
				hc->rooms[i] = hc->rooms[--hc->nrooms];
			}
			return;
		}
	}
	if (joined) {
		xgrow(&hc->rooms, &hc->cap, hc->nrooms + 1, sizeof(*hc->rooms));
		hc->rooms[hc->nrooms++] = xstrdup(room);
		subs_add(room, 1);
	}
}

static void conn_drop(struct hub_conn *hc)
{
	while (hc->nrooms)
		conn_room(hc, hc->rooms[hc->nrooms - 1], false);
	if (hc->user)
		user_add(hc->user, -1);
	count_add('a', hc->addr, -1);
	map_del_u64(&conns, hc->id);
	free(hc->rooms);
	free(hc->user);
	free(hc);
}

void registry_open(struct link *l, struct ipc_reader *r)
{
	char user[256], addr[INET6_ADDRSTRLEN];
	uint64_t id = ipc_get_u64(r);
	ipc_get_str(r, user, sizeof(user));
	ipc_get_str(r, addr, sizeof(addr));
	int64_t at = (int64_t)ipc_get_u64(r);
	if (!ipc_reader_done(r))
		return;
	struct hub_conn *hc = map_get_u64(&conns, id);
	intptr_t per_addr = 0;
	if (hc) {
		/* Known already (an anonymous connection authenticated): it keeps
		 * its rooms and only gains a user. */
		if (hc->user)
			user_add(hc->user, -1);
		free(hc->user);
	} else {
		hc = xcalloc(1, sizeof(*hc));
		hc->id = id;
		hc->slot = l->slot;
		snprintf(hc->addr, sizeof(hc->addr), "%s", addr);
		hc->connected_at = at;
		map_put_u64(&conns, id, hc);
		per_addr = count_add('a', hc->addr, 1);
	}
	hc->user = user[0] ? xstrdup(user) : NULL;
	/* Limits over all workers: the newest connection over a cap is closed. */
	intptr_t per_user = hc->user ? user_add(hc->user, 1) : 0;
	if (per_addr > hub.cfg->max_connections_per_ip)
		send_kick(l->slot, id, WS_CLOSE_POLICY, "too many connections from this address");
	else if (per_user > hub.cfg->max_connections_per_user)
		send_kick(l->slot, id, WS_CLOSE_POLICY, "too many connections for this user");
}

void registry_close(struct ipc_reader *r)
{
	struct hub_conn *hc = map_get_u64(&conns, ipc_get_u64(r));
	if (ipc_reader_done(r) && hc)
		conn_drop(hc);
}

void registry_room(struct ipc_reader *r)
{
	char room[ROOM_MAX + 1];
	struct hub_conn *hc = map_get_u64(&conns, ipc_get_u64(r));
	ipc_get_str(r, room, sizeof(room));
	bool joined = ipc_get_u8(r) != 0;
	if (ipc_reader_done(r) && hc)
		conn_room(hc, room, joined);
}

size_t registry_subscribers(const char *room)
{
	return (size_t)(intptr_t)map_get(&room_subs, room, strlen(room));
}

size_t registry_rooms(void)
{
	return room_subs.count;
}

size_t registry_users(void)
{
	return users;
}

void registry_cluster_users(void)
{
	const char **names = xcalloc(users + 1, sizeof(*names));
	size_t n = 0;
	struct map_iter it = { 0 };
	struct map_entry *e;
	while ((e = map_next(&counts, &it)))
		if (e->key[0] == 'u')
			names[n++] = e->key + 1;
	cluster_node_users(&hub.redis, hub.ctx->cfg->node_name, names, n);
	free(names);
}

void registry_link_lost(struct link *l)
{
	struct map_iter it = { 0 };
	struct map_entry *e;
	while ((e = map_next(&conns, &it)))
		if (((struct hub_conn *)e->val)->slot == l->slot)
			conn_drop(e->val);
}

size_t registry_count(void)
{
	return conns.count;
}

void registry_stats(json_t *stats)
{
	size_t anonymous = 0;
	struct map_iter it = { 0 };
	struct map_entry *e;
	json_t *per_user = json_object();
	while ((e = map_next(&conns, &it))) {
		struct hub_conn *hc = e->val;
		if (!hc->user) {
			anonymous++;
			continue;
		}
		json_t *n = json_object_get(per_user, hc->user);
		json_object_set_new(per_user, hc->user,
				    json_integer(n ? json_integer_value(n) + 1 : 1));
	}
	json_object_set_new(stats, "connections", json_integer((json_int_t)conns.count));
	json_object_set_new(stats, "unique_users", json_integer((json_int_t)json_object_size(per_user)));
	json_object_set_new(stats, "anonymous", json_integer((json_int_t)anonymous));
	json_object_set_new(stats, "user_connections", per_user);
}

static json_t *conn_json(const struct hub_conn *hc)
{
	char at[UTIL_TS_LEN + 1];
	ts_format(hc->connected_at, at);
	json_t *rooms = json_array();
	for (size_t i = 0; i < hc->nrooms; i++)
		json_array_append_new(rooms, json_string(hc->rooms[i]));
	return json_pack("{s:I, s:o, s:i, s:s, s:o, s:s}", "id", (json_int_t)hc->id,
			 "user", hc->user ? json_string(hc->user) : json_null(),
			 "worker", hc->slot + 1, "remote_addr", hc->addr, "rooms", rooms,
			 "connected_at", at);
}

static int kick_where(const char *user, uint64_t id)
{
	int n = 0;
	struct map_iter it = { 0 };
	struct map_entry *e;
	while ((e = map_next(&conns, &it))) {
		struct hub_conn *hc = e->val;
		if ((user && hc->user && strcmp(hc->user, user) == 0) || (!user && hc->id == id)) {
			send_kick(hc->slot, hc->id, WS_CLOSE_KICKED, "disconnected by the server");
			n++;
		}
	}
	return n;
}

int registry_kick_user(const char *user)
{
	return kick_where(user, 0);
}

bool registry_request(struct link *l, uint64_t req, const char *op, json_t *q)
{
	const char *user = json_string_value(json_object_get(q, "user"));
	if (strcmp(op, "connections") == 0) {
		json_t *arr = json_array();
		struct map_iter it = { 0 };
		struct map_entry *e;
		while ((e = map_next(&conns, &it))) {
			struct hub_conn *hc = e->val;
			if (!user || (hc->user && strcmp(hc->user, user) == 0))
				json_array_append_new(arr, conn_json(hc));
		}
		hub_reply_json(l, req, 200, json_pack("{s:o}", "connections", arr));
	} else if (strcmp(op, "disconnect") == 0) {
		/* A user is disconnected on every node of a cluster: an edge leaves
		 * it to the primary, which tells the edges through Redis. */
		if (user && hub.edge)
			return false;
		uint64_t id = (uint64_t)json_integer_value(json_object_get(q, "id"));
		int n = user ? kick_where(user, 0) : kick_where(NULL, id);
		if (user && hub.cfg->cluster_redis)
			cluster_disconnect(&hub.redis, user);
		if (!user && n == 0)
			hub_reply_error(l, req, 404, "not_found", "no such connection");
		else
			hub_reply_json(l, req, 200, json_pack("{s:i}", "disconnected", n));
	} else {
		return false;
	}
	return true;
}
