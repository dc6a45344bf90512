/* cluster.c -- key names and self-healing hiredis connections (cluster.h). */
#include "cluster.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <hiredis/adapters/libev.h>

#include "log.h"
#include "util.h"

#define CLUSTER_SADD_CHUNK 1000     /* members per SADD when a node's users are sent whole */

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

void cluster_link_flush(struct cluster_link *l)
{
	if (l->up)
		redisAsyncHandleWrite(l->ac);
}

void cluster_disconnect(struct cluster_link *l, const char *user)
{
	if (!l->up)
		return;
	json_t *msg = json_pack("{s:s, s:s}", "op", "disconnect", "user", user);
	char *text = json_dumps(msg, JSON_COMPACT);
	redisAsyncCommand(l->ac, NULL, NULL, "PUBLISH %s %s", CLUSTER_KEY_CONTROL, text);
	free(text);
	json_decref(msg);
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

void cluster_node_users(struct cluster_link *l, const char *name, const char **users, size_t n)
{
	if (!l->up)
		return;
	char key[CLUSTER_KEY_MAX];
	cluster_key_users(key, name);
	const char *argv[2 + CLUSTER_SADD_CHUNK] = { "SADD", key };
	size_t lens[2 + CLUSTER_SADD_CHUNK] = { 4, strlen(key) };
	/* One transaction: nobody counts the set while it is half made. */
	redisAsyncCommand(l->ac, NULL, NULL, "MULTI");
	redisAsyncCommand(l->ac, NULL, NULL, "DEL %s", key);
	for (size_t i = 0; i < n; i += CLUSTER_SADD_CHUNK) {
		size_t k = MIN(n - i, CLUSTER_SADD_CHUNK);
		for (size_t j = 0; j < k; j++) {
			argv[2 + j] = users[i + j];
			lens[2 + j] = strlen(users[i + j]);
		}
		redisAsyncCommandArgv(l->ac, NULL, NULL, (int)(2 + k), argv, lens);
	}
	redisAsyncCommand(l->ac, NULL, NULL, "EXPIRE %s %d", key, CLUSTER_NODE_TTL);
	redisAsyncCommand(l->ac, NULL, NULL, "EXEC");
}

void cluster_primary_announce(struct cluster_link *l, const char *api_url)
{
	if (l->up)
		redisAsyncCommand(l->ac, NULL, NULL, "SET %s %s EX %d", CLUSTER_KEY_PRIMARY,
				  api_url, CLUSTER_NODE_TTL);
}

/* ---- reading the cluster view ------------------------------------------------------ */

static struct {
	json_t *nodes;              /* as last read: [{name, figures...}]; NULL before */
	json_int_t users;           /* distinct users over them */
	bool reading;               /* a read is under way: the next beat does not start one */
} view;

/* One read: the figures of every name in herald:nodes (the replies come in
 * the order asked), then the distinct users of the live ones, counted in
 * Redis (into a key of the reader's own, deleted at once) rather than sent. */
struct view_read {
	char **names;
	size_t n, replies;
	bool failed;
	json_t *nodes;
	char union_key[CLUSTER_KEY_MAX];
};

static void view_read_free(struct view_read *vr)
{
	for (size_t i = 0; i < vr->n; i++)
		free(vr->names[i]);
	free(vr->names);
	json_decref(vr->nodes);
	free(vr);
	view.reading = false;
}

static void view_keep(struct view_read *vr, json_int_t users)
{
	json_decref(view.nodes);
	view.nodes = json_incref(vr->nodes);
	view.users = users;
	view_read_free(vr);
}

static void users_read(redisAsyncContext *ac, void *reply, void *arg)
{
	redisReply *r = reply;
	if (r && r->type == REDIS_REPLY_INTEGER)
		view_keep(arg, (json_int_t)r->integer);
	else
		view_read_free(arg);
}

static void users_ask(redisAsyncContext *ac, struct view_read *vr)
{
	size_t n = json_array_size(vr->nodes);
	if (n == 0) {
		view_keep(vr, 0);
		return;
	}
	char (*keys)[CLUSTER_KEY_MAX] = xcalloc(n, sizeof(*keys));
	const char **argv = xcalloc(n + 2, sizeof(*argv));
	size_t *lens = xcalloc(n + 2, sizeof(*lens));
	argv[0] = "SUNIONSTORE";
	argv[1] = vr->union_key;
	for (size_t i = 0; i < n; i++) {
		json_t *node = json_array_get(vr->nodes, i);
		cluster_key_users(keys[i], json_string_value(json_object_get(node, "name")));
		argv[i + 2] = keys[i];
	}
	for (size_t i = 0; i < n + 2; i++)
		lens[i] = strlen(argv[i]);
	if (redisAsyncCommandArgv(ac, users_read, vr, (int)n + 2, argv, lens) == REDIS_OK)
		redisAsyncCommand(ac, NULL, NULL, "DEL %s", vr->union_key);
	else
		view_read_free(vr);
	free(lens);
	free(argv);
	free(keys);
}

/* A hash field as the number it holds, else as text. */
static json_t *view_value(const char *s)
{
	char *end;
	long long i = strtoll(s, &end, 10);
	if (*s && !*end)
		return json_integer(i);
	double d = strtod(s, &end);
	if (*s && !*end)
		return json_real(d);
	return json_string(s);
}

static void node_read(redisAsyncContext *ac, void *reply, void *arg)
{
	struct view_read *vr = arg;
	redisReply *r = reply;
	const char *name = vr->names[vr->replies++];
	if (!r || r->type != REDIS_REPLY_ARRAY) {
		vr->failed = true;
	} else if (r->elements == 0) {
		/* Its figures expired: it stopped beating. */
		redisAsyncCommand(ac, NULL, NULL, "SREM %s %s", CLUSTER_KEY_NODES, name);
	} else {
		json_t *node = json_pack("{s:s}", "name", name);
		for (size_t i = 0; i + 1 < r->elements; i += 2)
			if (r->element[i]->type == REDIS_REPLY_STRING &&
			    r->element[i + 1]->type == REDIS_REPLY_STRING)
				json_object_set_new(node, r->element[i]->str,
						    view_value(r->element[i + 1]->str));
		json_array_append_new(vr->nodes, node);
	}
	if (vr->replies < vr->n)
		return;
	if (vr->failed)
		view_read_free(vr);
	else
		users_ask(ac, vr);
}

static void members_read(redisAsyncContext *ac, void *reply, void *arg)
{
	redisReply *r = reply;
	if (!r || r->type != REDIS_REPLY_ARRAY) {
		view.reading = false;
		return;
	}
	struct view_read *vr = xcalloc(1, sizeof(*vr));
	snprintf(vr->union_key, sizeof(vr->union_key), "herald:users-union:%s", (const char *)arg);
	vr->names = xcalloc(r->elements + 1, sizeof(*vr->names));
	vr->nodes = json_array();
	for (size_t i = 0; i < r->elements; i++) {
		char key[CLUSTER_KEY_MAX];
		if (r->element[i]->type != REDIS_REPLY_STRING)
			continue;
		cluster_key_node(key, r->element[i]->str);
		if (redisAsyncCommand(ac, node_read, vr, "HGETALL %s", key) != REDIS_OK) {
			vr->failed = true;
			break;
		}
		vr->names[vr->n++] = xstrdup(r->element[i]->str);
	}
	if (vr->n == 0 && vr->failed)
		view_read_free(vr);
	else if (vr->n == 0)
		users_ask(ac, vr);
}

void cluster_view_refresh(struct cluster_link *l, const char *self)
{
	if (!l->up || view.reading)
		return;
	view.reading = redisAsyncCommand(l->ac, members_read, (void *)self, "SMEMBERS %s",
					 CLUSTER_KEY_NODES) == REDIS_OK;
}

json_t *cluster_view_json(const char *self, json_t *figures)
{
	json_t *nodes = json_array(), *own = json_pack("{s:s}", "name", self), *node;
	json_object_update(own, figures);
	json_array_append_new(nodes, own);
	size_t i;
	json_array_foreach(view.nodes, i, node) {
		const char *name = json_string_value(json_object_get(node, "name"));
		if (!name || strcmp(name, self) != 0)
			json_array_append(nodes, node);
	}
	/* No node has more users than there are over all of them, however old the
	 * last count is. */
	json_int_t total = 0, users = view.users;
	json_array_foreach(nodes, i, node) {
		total += json_integer_value(json_object_get(node, "connections"));
		users = MAX(users, json_integer_value(json_object_get(node, "users")));
	}
	return json_pack("{s:o, s:I, s:I}", "nodes", nodes, "totalConnections", total,
			 "uniqueUsers", users);
}
