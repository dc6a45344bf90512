/* courier.c -- the courier process: it sends due webhook deliveries with
 * libcurl's multi interface on a libev loop, and reports each attempt's
 * result to the hub, which alone writes what follows (retry, success, dead).
 *
 * Due deliveries are read through a read-only SQLite handle, so the queue is
 * the database itself and survives any crash. A delivery is "busy" from the
 * moment it is sent until the hub says its result is committed
 * (IPC_WEBHOOK_SETTLED): until then it is not sent again, and its result is
 * reported again if the hub restarts meanwhile. */
#include "courier.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <jansson.h>

#include "curlev.h"
#include "ipc.h"
#include "log.h"
#include "map.h"
#include "store.h"
#include "util.h"
#include "webhook.h"

#define STATS_INTERVAL 1.0
#define IDLE_RESCAN_MS 5000     /* look at the queue at least this often */
#define ERROR_MAX (CURL_ERROR_SIZE + 32)

/* An endpoint as the courier needs it: where, how, and whether it may send. */
struct endpoint {
	char id[32];
	char *url, *secret, *old_secret;
	int64_t old_secret_until_ms;
	int timeout_ms;
	bool enabled;
	int failures;               /* consecutive, as the hub last committed them */
	int64_t paused_until_ms;
	int in_flight;              /* attempts on the wire */
	int busy;                   /* in flight, or reported and not yet settled */
};

/* One attempt of one delivery: on the wire, then reported until settled. */
struct attempt {
	int64_t delivery;
	char endpoint[32];
	uint32_t attempts;          /* before this one */
	CURL *easy;                 /* NULL once finished */
	struct curl_slist *headers;
	char *body;
	int64_t started_ms;
	/* the result */
	uint32_t status, retry_after, duration_ms;
	char error[ERROR_MAX];
	char curl_error[CURL_ERROR_SIZE];
};

static struct {
	struct proc_ctx *ctx;
	struct config *cfg;
	struct ev_loop *loop;
	struct store *reader;
	struct ipc_chan master;
	struct proc_hub_link hub;
	ev_timer stats_timer, scan_timer;
	ev_prepare scan_watcher;
	ev_signal sig_term, sig_usr1;
	bool scan_wanted;
	struct curlev curl;
	CURL **idle;                /* finished handles, reset for the next attempt */
	size_t nidle, idle_cap;
	struct endpoint *endpoints;
	size_t nendpoints;
	struct map attempts;        /* delivery id -> attempt, busy ones */
	int in_flight;
	uint64_t sent, succeeded, failed;
} co;

static void scan_soon(void)
{
	co.scan_wanted = true;
}

/* ---- endpoints ------------------------------------------------------------------ */

static struct endpoint *endpoint_find(const char *id)
{
	for (size_t i = 0; i < co.nendpoints; i++)
		if (strcmp(co.endpoints[i].id, id) == 0)
			return &co.endpoints[i];
	return NULL;
}

static void endpoints_free(struct endpoint *list, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(list[i].url);
		free(list[i].secret);
		free(list[i].old_secret);
	}
	free(list);
}

static char *dup_or_null(json_t *v)
{
	return json_is_string(v) ? xstrdup(json_string_value(v)) : NULL;
}

/* Reads the endpoints again; the attempts already busy keep counting. */
static void endpoints_load(void)
{
	json_t *rows = store_webhooks(co.reader);
	if (!rows) {
		log_error("event=webhooks_load_failed error=\"%s\"", store_errmsg(co.reader));
		return;
	}
	size_t n = json_array_size(rows);
	struct endpoint *list = xcalloc(n ? n : 1, sizeof(*list));
	for (size_t i = 0; i < n; i++) {
		json_t *row = json_array_get(rows, i);
		struct endpoint *e = &list[i];
		snprintf(e->id, sizeof(e->id), "%s", json_string_value(json_object_get(row, "id")));
		e->url = dup_or_null(json_object_get(row, "url"));
		e->secret = dup_or_null(json_object_get(row, "secret"));
		e->old_secret = dup_or_null(json_object_get(row, "old_secret"));
		e->old_secret_until_ms = json_integer_value(json_object_get(row, "old_secret_until_ms"));
		e->timeout_ms = (int)json_integer_value(json_object_get(row, "timeout_ms"));
		e->enabled = json_integer_value(json_object_get(row, "enabled")) != 0;
		e->failures = (int)json_integer_value(json_object_get(row, "failures"));
		e->paused_until_ms = json_integer_value(json_object_get(row, "paused_until_ms"));
	}
	json_decref(rows);
	endpoints_free(co.endpoints, co.nendpoints);
	co.endpoints = list;
	co.nendpoints = n;
	struct map_iter it = { 0 };
	struct map_entry *me;
	while ((me = map_next(&co.attempts, &it))) {
		struct attempt *a = me->val;
		struct endpoint *e = endpoint_find(a->endpoint);
		if (e) {
			e->busy++;
			e->in_flight += a->easy != NULL;
		}
	}
}

/* The endpoint's circuit breaker: closed, open (cooling down) or half open
 * (the cool-down has passed: one probe may go). */
enum circuit { CIRCUIT_CLOSED, CIRCUIT_OPEN, CIRCUIT_HALF_OPEN };
static const char *const circuit_names[] = { "closed", "open", "half_open" };

static enum circuit endpoint_circuit(const struct endpoint *e, int64_t now)
{
	return e->failures < co.cfg->webhook_breaker_failures ? CIRCUIT_CLOSED
	       : e->paused_until_ms > now ? CIRCUIT_OPEN : CIRCUIT_HALF_OPEN;
}

/* How many more attempts the endpoint may have on the wire now: its
 * concurrency while the breaker is closed, none while it is open, and one
 * probe when half open, until the hub has recorded the probe's outcome. */
static int endpoint_room(const struct endpoint *e, int64_t now)
{
	if (!e->enabled || !e->url || !e->secret)
		return 0;
	enum circuit c = endpoint_circuit(e, now);
	int room = c == CIRCUIT_CLOSED ? co.cfg->webhook_concurrency - e->in_flight
		   : c == CIRCUIT_HALF_OPEN ? 1 - e->busy : 0;
	return MAX(0, MIN(room, co.cfg->webhook_max_in_flight - co.in_flight));
}

/* ---- results --------------------------------------------------------------------- */

static void attempt_free(struct attempt *a)
{
	curl_slist_free_all(a->headers);
	free(a->body);
	free(a);
}

static void report(struct attempt *a)
{
	if (!co.hub.up)
		return;                 /* sent when the hub is back */
	struct buf b = { 0 };
	size_t m = ipc_begin(&b, IPC_WEBHOOK_RESULT);
	ipc_put_u64(&b, (uint64_t)a->delivery);
	ipc_put_u32(&b, a->attempts);
	ipc_put_u32(&b, a->status);
	ipc_put_u32(&b, a->retry_after);
	ipc_put_cstr(&b, a->error);
	ipc_put_u64(&b, (uint64_t)a->started_ms);
	ipc_put_u32(&b, a->duration_ms);
	ipc_end(&b, m);
	ipc_chan_send(&co.hub.ch, &b);
	buf_free(&b);
}

/* The hub committed a result: the delivery is no longer ours, and the
 * endpoint's breaker state is what the hub now says. */
static void on_settled(struct ipc_reader *r)
{
	char id[32];
	int64_t delivery = (int64_t)ipc_get_u64(r);
	ipc_get_str(r, id, sizeof(id));
	bool enabled = ipc_get_u8(r) != 0;
	int failures = (int)ipc_get_u32(r);
	int64_t paused = (int64_t)ipc_get_u64(r);
	if (!ipc_reader_done(r)) {
		log_warn("event=bad_webhook_settled");
		return;
	}
	struct attempt *a = map_get_u64(&co.attempts, (uint64_t)delivery);
	if (!a || a->easy)
		return;                 /* not ours, or sent again meanwhile */
	map_del_u64(&co.attempts, (uint64_t)delivery);
	struct endpoint *e = endpoint_find(a->endpoint);
	if (e) {
		e->busy--;
		if (*id) {
			e->enabled = enabled;
			e->failures = failures;
			e->paused_until_ms = (int64_t)paused;
		}
	}
	attempt_free(a);
	scan_soon();
}

/* ---- sending --------------------------------------------------------------------- */

static size_t discard_body(char *p, size_t size, size_t n, void *arg)
{
	return size * n;
}

/* Keeps Retry-After of the final response (a 1xx starts the headers anew). */
static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
	struct attempt *a = arg;
	size_t len = size * n;
	static const char name[] = "retry-after:";
	if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) {
		a->retry_after = 0;
	} else if (len > sizeof(name) - 1 && strncasecmp(p, name, sizeof(name) - 1) == 0) {
		const char *v = p + sizeof(name) - 1, *end = p + len;
		while (v < end && (*v == ' ' || *v == '\t'))
			v++;
		while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
			end--;
		int64_t s = webhook_retry_after(v, (size_t)(end - v), now_ms() / 1000);
		a->retry_after = s > 0 ? (uint32_t)MIN(s, (int64_t)UINT32_MAX) : 0;
	}
	return len;
}

/* Adds one header line "name: value" to a's list. */
static void header_add(struct attempt *a, const char *name, const char *value)
{
	char line[512];
	snprintf(line, sizeof(line), "%s: %s", name, value);
	a->headers = curl_slist_append(a->headers, line);
}

/* The signature header: the secret's, and during a rotation's overlap the
 * old secret's too, space separated. */
static int sign(struct buf *sig, const struct endpoint *e, const char *msg_id, int64_t ts,
		const char *body, size_t len, int64_t now)
{
	if (webhook_sign(sig, e->secret, msg_id, ts, body, len) < 0)
		return -1;
	if (e->old_secret && e->old_secret_until_ms > now) {
		buf_appends(sig, " ");
		if (webhook_sign(sig, e->old_secret, msg_id, ts, body, len) < 0)
			return -1;
	}
	buf_append(sig, "", 1);
	return 0;
}

struct fill {
	struct endpoint *e;
	int room;
	int64_t now;
};

/* One due row of fill->e: sent unless it is busy already. */
static void send_due(void *arg, int64_t delivery, int attempts, const char *body, size_t len)
{
	struct fill *f = arg;
	struct endpoint *e = f->e;
	if (f->room <= 0 || map_get_u64(&co.attempts, (uint64_t)delivery))
		return;
	struct attempt *a = xcalloc(1, sizeof(*a));
	a->delivery = delivery;
	a->attempts = (uint32_t)attempts;
	snprintf(a->endpoint, sizeof(a->endpoint), "%s", e->id);
	a->body = xstrndup(body ? body : "", len);
	a->started_ms = f->now;

	char msg_id[32], ts[24], agent[32];
	struct buf sig = { 0 };
	int64_t ts_s = f->now / 1000;
	snprintf(msg_id, sizeof(msg_id), "msg_%lld", (long long)delivery);
	snprintf(ts, sizeof(ts), "%lld", (long long)ts_s);
	snprintf(agent, sizeof(agent), "herald/%s", HERALD_VERSION);
	if (sign(&sig, e, msg_id, ts_s, a->body, len, f->now) < 0) {
		/* The hub checks secrets when they are set: this is a broken row. */
		snprintf(a->error, sizeof(a->error), "endpoint secret is not valid");
		buf_free(&sig);
		map_put_u64(&co.attempts, (uint64_t)delivery, a);
		e->busy++;
		report(a);
		return;
	}
	header_add(a, "content-type", "application/json");
	header_add(a, "webhook-id", msg_id);
	header_add(a, "webhook-timestamp", ts);
	header_add(a, "webhook-signature", sig.data);
	header_add(a, "user-agent", agent);
	a->headers = curl_slist_append(a->headers, "Expect:");   /* no 100-continue round trip */
	buf_free(&sig);

	CURL *h = co.nidle ? co.idle[--co.nidle] : curl_easy_init();
	if (!h)
		fatal("event=curl_easy_init_failed");
	curl_easy_setopt(h, CURLOPT_URL, e->url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, a->headers);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, a->body);
	curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)len);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)(e->timeout_ms > 0 ? e->timeout_ms
						       : co.cfg->webhook_timeout_ms));
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard_body);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, a);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, a->curl_error);
	curl_easy_setopt(h, CURLOPT_PRIVATE, a);
	a->easy = h;
	map_put_u64(&co.attempts, (uint64_t)delivery, a);
	e->busy++;
	e->in_flight++;
	co.in_flight++;
	co.sent++;
	f->room--;
	curl_multi_add_handle(co.curl.multi, h);
}

/* A finished transfer becomes a result. */
static void attempt_done(CURL *h, CURLcode code)
{
	struct attempt *a;
	long status = 0;
	curl_easy_getinfo(h, CURLINFO_PRIVATE, (char **)&a);
	if (code == CURLE_OK)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_reset(h);
	xgrow(&co.idle, &co.idle_cap, co.nidle + 1, sizeof(*co.idle));
	co.idle[co.nidle++] = h;
	a->easy = NULL;
	a->status = (uint32_t)status;
	a->duration_ms = (uint32_t)MAX(0, now_ms() - a->started_ms);
	if (code != CURLE_OK)
		snprintf(a->error, sizeof(a->error), "%s",
			 *a->curl_error ? a->curl_error : curl_easy_strerror(code));
	else if (status < 200 || status >= 300)
		snprintf(a->error, sizeof(a->error), "HTTP %ld", status);
	if (status >= 200 && status < 300)
		co.succeeded++;
	else
		co.failed++;
	co.in_flight--;
	struct endpoint *e = endpoint_find(a->endpoint);
	if (e)
		e->in_flight--;
	log_debug("event=webhook_attempt delivery=%lld endpoint=%s attempt=%u status=%u "
		  "ms=%u error=\"%s\"", (long long)a->delivery, a->endpoint, a->attempts + 1,
		  a->status, a->duration_ms, a->error);
	report(a);
	scan_soon();
}

/* Sends what is due on every endpoint that has room, and sets the timer for
 * the next delivery that falls due (or a breaker that closes). */
static void scan(void)
{
	int64_t now = now_ms(), next = now + IDLE_RESCAN_MS;
	co.scan_wanted = false;
	/* Without the hub no outcome can be recorded: send nothing new meanwhile. */
	for (size_t i = 0; i < co.nendpoints && co.hub.up; i++) {
		struct endpoint *e = &co.endpoints[i];
		if (!e->enabled)
			continue;
		struct fill f = { e, endpoint_room(e, now), now };
		if (f.room > 0 &&
		    store_deliveries_due(co.reader, e->id, now, f.room + e->busy, send_due, &f) < 0)
			log_error("event=webhook_queue_unreadable error=\"%s\"",
				  store_errmsg(co.reader));
		if (endpoint_circuit(e, now) == CIRCUIT_OPEN)
			next = MIN(next, e->paused_until_ms);
		/* No room left: an attempt on the wire brings the next scan when it ends. */
		if (f.room == 0 && e->in_flight > 0)
			continue;
		int64_t due = store_delivery_next_due(co.reader, e->id, now);
		if (due > 0)
			next = MIN(next, due);
	}
	ev_timer_stop(co.loop, &co.scan_timer);
	ev_timer_set(&co.scan_timer, (double)MAX(next - now, 1) / 1000.0, 0);
	ev_timer_start(co.loop, &co.scan_timer);
}

/* ---- the hub link ---------------------------------------------------------------- */

static void send_stats(void)
{
	if (!co.hub.up)
		return;
	json_t *eps = json_object();
	int64_t now = now_ms();
	for (size_t i = 0; i < co.nendpoints; i++) {
		const struct endpoint *e = &co.endpoints[i];
		json_object_set_new(eps, e->id,
				    json_pack("{s:i, s:i, s:s}", "in_flight", e->in_flight,
					      "awaiting_commit", e->busy - e->in_flight,
					      "circuit", circuit_names[endpoint_circuit(e, now)]));
	}
	json_t *v = json_pack("{s:i, s:i, s:I, s:I, s:I, s:I, s:o}", "pid", (int)getpid(),
			      "in_flight", co.in_flight,
			      "awaiting_commit", (json_int_t)co.attempts.count - co.in_flight,
			      "sent", (json_int_t)co.sent, "succeeded", (json_int_t)co.succeeded,
			      "failed", (json_int_t)co.failed, "endpoints", eps);
	char *json = json_dumps(v, JSON_COMPACT);
	json_decref(v);
	struct buf b = { 0 };
	size_t m = ipc_begin(&b, IPC_WORKER_STATS);
	ipc_put_cstr(&b, json);
	ipc_end(&b, m);
	ipc_chan_send(&co.hub.ch, &b);
	buf_free(&b);
	free(json);
}

static void hub_msg(struct ipc_chan *ch, uint16_t type, struct ipc_reader *r)
{
	switch (type) {
	case IPC_WEBHOOK_SETTLED:
		on_settled(r);
		return;
	case IPC_WEBHOOK_WAKE: {
		uint8_t what = ipc_get_u8(r);
		if (what & WEBHOOK_WAKE_ENDPOINTS)
			endpoints_load();
		scan_soon();
		return;
	}
	default:
		log_warn("event=ipc_unexpected from=hub type=%u", type);
	}
}

/* Results the hub may not have committed go again: it tells a repeat from
 * a new attempt by the attempt count. */
static void hub_up(void)
{
	struct map_iter it = { 0 };
	struct map_entry *e;
	while ((e = map_next(&co.attempts, &it)))
		if (!((struct attempt *)e->val)->easy)
			report(e->val);
	send_stats();
	scan_soon();
}

/* ---- lifecycle --------------------------------------------------------------------- */

static void master_msg(struct ipc_chan *ch, uint16_t type, struct ipc_reader *r)
{
	if (type != IPC_RELOAD)
		return;
	co.cfg = proc_reload(co.ctx, co.cfg);
	curl_multi_setopt(co.curl.multi, CURLMOPT_MAXCONNECTS, (long)co.cfg->webhook_max_in_flight);
	scan_soon();
}

static void master_lost(struct ipc_chan *ch)
{
	_exit(0);
}

static void scan_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	scan_soon();
}

/* Before the loop blocks: one scan for everything that asked for one in this
 * turn, and the hub link flushed. */
static void prepare_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
	if (co.scan_wanted)
		scan();
	if (co.hub.ch.fd >= 0)
		ipc_chan_flush(&co.hub.ch);
}

static void stats_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	send_stats();
}

/* Attempts on the wire are abandoned: their rows are still due in the
 * database, and the next courier sends them again with the same webhook-id. */
static void sigterm_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	log_info("event=courier_stopping in_flight=%d", co.in_flight);
	if (co.hub.ch.fd >= 0)
		ipc_chan_flush(&co.hub.ch);
	proc_exit(0);
}

static void sigusr1_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	log_reopen();
}

void courier_main(struct proc_ctx *ctx)
{
	struct ev_loop *loop = proc_child_init("courier");
	proc_expect_hello(ctx->master_fd);
	signal(SIGINT, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	co.ctx = ctx;
	co.cfg = ctx->cfg;
	co.loop = loop;
	char err[256];
	co.reader = store_open(co.cfg->database, true, false, err, sizeof(err));
	if (!co.reader)
		fatal("event=database_failed mode=read_only path=%s error=\"%s\"",
		      co.cfg->database, err);
	curlev_init(&co.curl, loop, attempt_done);
	curl_multi_setopt(co.curl.multi, CURLMOPT_MAXCONNECTS, (long)co.cfg->webhook_max_in_flight);
	endpoints_load();

	ipc_chan_open(&co.master, loop, ctx->master_fd, master_msg, master_lost, NULL);
	ev_timer_init(&co.scan_timer, scan_timer_cb, 0, 0);
	ev_timer_init(&co.stats_timer, stats_cb, STATS_INTERVAL, STATS_INTERVAL);
	ev_timer_start(loop, &co.stats_timer);
	ev_prepare_init(&co.scan_watcher, prepare_cb);
	ev_prepare_start(loop, &co.scan_watcher);
	ev_signal_init(&co.sig_term, sigterm_cb, SIGTERM);
	ev_signal_start(loop, &co.sig_term);
	ev_signal_init(&co.sig_usr1, sigusr1_cb, SIGUSR1);
	ev_signal_start(loop, &co.sig_usr1);
	proc_hub_link_start(&co.hub, loop, ctx->hub_name, IPC_ROLE_COURIER, 0, hub_msg, hub_up,
			    NULL);
	scan_soon();
	log_info("event=courier_ready endpoints=%zu", co.nendpoints);
	ev_run(loop, 0);
	_exit(0);
}
