/* cluster.c -- key names and self-healing hiredis connections (cluster.h). */
#include "cluster.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <hiredis/adapters/libev.h>

#include "log.h"

void cluster_key_room(char out[CLUSTER_KEY_MAX], const char *room)
{
	snprintf(out, CLUSTER_KEY_MAX, CLUSTER_ROOM_PREFIX "%s", room);
}

void cluster_key_log(char out[CLUSTER_KEY_MAX], const char *room)
{
	snprintf(out, CLUSTER_KEY_MAX, "herald:log:%s", room);
}

void cluster_key_node(char out[CLUSTER_KEY_MAX], const char *name)
{
	snprintf(out, CLUSTER_KEY_MAX, "herald:node:%s", name);
}

void cluster_key_users(char out[CLUSTER_KEY_MAX], const char *name)
{
	snprintf(out, CLUSTER_KEY_MAX, "herald:users:%s", name);
}

/* ---- connections ------------------------------------------------------------------- */

static void link_connect(struct cluster_link *l);

static void link_lost(struct cluster_link *l, const char *why)
{
	bool was_up = l->up;
	l->ac = NULL;
	l->up = false;
	if (was_up) {
		log_warn("event=redis_down link=%s error=\"%s\"", l->what, why);
		if (l->on_down)
			l->on_down(l);
	}
	if (l->loop)
		ev_timer_again(l->loop, &l->retry);
}

static void selected(redisAsyncContext *ac, void *reply, void *arg)
{
	struct cluster_link *l = arg;
	redisReply *r = reply;
	if (!r || r->type == REDIS_REPLY_ERROR) {
		log_error("event=redis_select_failed link=%s db=%d", l->what, l->cfg->redis_db);
		redisAsyncDisconnect(ac);
		return;
	}
	l->up = true;
	log_info("event=redis_up link=%s redis=%s:%d", l->what, l->cfg->redis_host,
		 l->cfg->redis_port);
	if (l->on_up)
		l->on_up(l);
}

static void connected(const redisAsyncContext *ac, int status)
{
	struct cluster_link *l = ac->data;
	if (status != REDIS_OK) {
		link_lost(l, ac->errstr);   /* hiredis frees ac after this callback */
		return;
	}
	redisAsyncCommand((redisAsyncContext *)ac, selected, l, "SELECT %d", l->cfg->redis_db);
}

static void disconnected(const redisAsyncContext *ac, int status)
{
	struct cluster_link *l = ac->data;
	if (l)
		link_lost(l, status == REDIS_OK ? "closed" : ac->errstr);
}

static void link_connect(struct cluster_link *l)
{
	redisAsyncContext *ac = redisAsyncConnect(l->cfg->redis_host, l->cfg->redis_port);
	if (!ac || ac->err) {
		log_warn("event=redis_connect_failed link=%s error=\"%s\"", l->what,
			 ac ? ac->errstr : "out of memory");
		if (ac)
			redisAsyncFree(ac);
		ev_timer_again(l->loop, &l->retry);
		return;
	}
	ac->data = l;
	l->ac = ac;
	redisLibevAttach(l->loop, ac);
	redisAsyncSetConnectCallback(ac, connected);
	redisAsyncSetDisconnectCallback(ac, disconnected);
}

static void retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct cluster_link *l = w->data;
	ev_timer_stop(loop, w);
	if (!l->ac)
		link_connect(l);
}

void cluster_link_open(struct cluster_link *l, struct ev_loop *loop, const struct config *cfg,
		       const char *what, void (*on_up)(struct cluster_link *),
		       void (*on_down)(struct cluster_link *), void *data)
{
	*l = (struct cluster_link){ .what = what, .loop = loop, .cfg = cfg, .on_up = on_up,
				    .on_down = on_down, .data = data };
	ev_init(&l->retry, retry_cb);
	l->retry.repeat = CLUSTER_RETRY;
	l->retry.data = l;
	link_connect(l);
}

void cluster_link_close(struct cluster_link *l)
{
	if (l->loop)
		ev_timer_stop(l->loop, &l->retry);
	l->loop = NULL;          /* no reconnect from the disconnect callback */
	l->on_down = NULL;
	if (l->ac) {
		l->ac->data = NULL;
		redisAsyncFree(l->ac);
		l->ac = NULL;
	}
	l->up = false;
}

/* ---- the cluster view -------------------------------------------------------------- */

void cluster_node_beat(struct cluster_link *l, const char *name, json_t *figures)
{
	if (!l->up)
		return;
	char key[CLUSTER_KEY_MAX], users[CLUSTER_KEY_MAX];
	cluster_key_node(key, name);
	cluster_key_users(users, name);
	size_t n = 2 + 2 * json_object_size(figures), i = 2;
	const char **argv = calloc(n, sizeof(*argv));
	size_t *lens = calloc(n, sizeof(*lens));
	char **owned = calloc(n, sizeof(*owned));
	if (!argv || !lens || !owned)
		goto out;
	argv[0] = "HSET";
	argv[1] = key;
	const char *field;
	json_t *v;
	json_object_foreach(figures, field, v) {
		argv[i++] = field;
		owned[i] = json_is_string(v) ? NULL : json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
		argv[i] = owned[i] ? owned[i] : json_string_value(v);
		if (!argv[i])
			argv[i] = "";
		i++;
	}
	for (size_t k = 0; k < i; k++)
		lens[k] = strlen(argv[k]);
	if (i > 2)
		redisAsyncCommandArgv(l->ac, NULL, NULL, (int)i, argv, lens);
	redisAsyncCommand(l->ac, NULL, NULL, "EXPIRE %s %d", key, CLUSTER_NODE_TTL);
	redisAsyncCommand(l->ac, NULL, NULL, "EXPIRE %s %d", users, CLUSTER_NODE_TTL);
	redisAsyncCommand(l->ac, NULL, NULL, "SADD %s %s", CLUSTER_KEY_NODES, name);
out:
	for (size_t k = 0; owned && k < n; k++)
		free(owned[k]);
	free(owned);
	free(lens);
	free(argv);
}

void cluster_node_user(struct cluster_link *l, const char *name, const char *user, bool present)
{
	if (!l->up)
		return;
	char key[CLUSTER_KEY_MAX];
	cluster_key_users(key, name);
	redisAsyncCommand(l->ac, NULL, NULL, present ? "SADD %s %s" : "SREM %s %s", key, user);
}
