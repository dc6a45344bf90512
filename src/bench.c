/* bench.c -- herald-bench, the load generator shipped with herald (like
 * redis-benchmark): fan-out, idle connections, publish throughput, replay,
 * abusive clients, webhook deliveries, workflow transitions. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <ev.h>
#include <jansson.h>
#include <sodium.h>

#include "acl.h"
#include "buf.h"
#include "config.h"
#include "jwt.h"
#include "map.h"
#include "util.h"
#include "wsclient.h"

#define BENCH_PIPELINE_MAX 256
#define BENCH_MAX_PIDS 256
#define BENCH_FD_RESERVE 64         /* descriptors kept for everything but connections */
#define BENCH_READ_CHUNK (64u << 10)

/* ---- options ---------------------------------------------------------------- */

static struct {
	const char *mode;
	long subscribers;       /* fanout */
	long connections;       /* conns: WebSockets; publish, workflows: HTTP connections */
	long messages;
	double rate;            /* fanout: publishes per second, 0 = closed loop */
	long publishers;        /* fanout, replay: HTTP connections */
	long pipeline;          /* requests in flight per HTTP connection (0: mode default) */
	const char *room;
	long rooms_count;
	long processes;         /* conns */
	double hold;            /* conns: seconds to keep the connections after measuring */
	double settle;          /* conns: seconds between the last welcome and measuring */
	const char *pids;
	const char *match;      /* command-line prefix of the processes to measure */
	const char *ws_url, *api_url, *api_key, *token;
	double timeout;         /* seconds per phase */
	long per_source;        /* connections per source address */
	long concurrency;       /* handshakes in flight */
	bool quiet;
	const char *kind;       /* abuse */
	double duration;        /* abuse: seconds */
	long endpoints;         /* webhooks */
	const char *url;        /* webhooks: endpoints' URL instead of the bench's receiver */
	long workflows;         /* workflows: instances */
	long bulk;              /* workflows: ids per bulk approval, 0 = one request each */
	bool socketio;          /* fanout, conns: Socket.IO clients instead of /ws */
	char sio_path[256];     /* Socket.IO path of the client listener */
} opt = {
	.rate = 0, .publishers = 4, .rooms_count = 1, .settle = 1, .match = "heraldd:",
	.timeout = 60, .per_source = 1000, .concurrency = 256, .duration = 10,
	.endpoints = 1, .sio_path = "/socket.io/",
};

static struct sockaddr_in ws_addr, api_addr;
static char ws_host[64], api_host[64];
static struct ev_loop *bench_loop;

static const char *protocol_name(void)
{
	return opt.socketio ? "socketio" : "native";
}

static void usage(FILE *fp)
{
	fprintf(fp,
"usage: herald-bench MODE [OPTIONS]\n"
"modes:\n"
"  fanout   --subscribers N --messages M [--room R] [--rate MSG/S] [--publishers P]\n"
"           [--protocol native|socketio]\n"
"           N WebSocket subscribers in one room; M publishes over P keep-alive HTTP\n"
"           connections; deliveries/s, publish-to-delivery latency, loss, order\n"
"  conns    --connections N [--processes P] [--hold S] [--settle S] [--pids PID,...]\n"
"           [--protocol native|socketio]\n"
"           N idle WebSockets over P processes; memory per connection of the\n"
"           server's processes (those whose command line starts with --match)\n"
"  publish  --messages M [--connections P] [--pipeline D] [--room R] [--rooms-count K]\n"
"           acknowledged publishes/s and request latency\n"
"  replay   --messages M [--room R] [--publishers P]\n"
"           publishes M messages, then one client subscribes from before the first\n"
"           and measures replayed messages/s and contiguity\n"
"  abuse    --kind K --connections N [--duration S] [--subscribers C] [--rate MSG/S]\n"
"           N attackers of kind idle, slowloris, oversized (1 MiB messages), flood\n"
"           (pings), subscribe (new rooms of R's namespace) or badtoken, reconnecting\n"
"           when dropped, beside C control subscribers of R (10) and publishes at\n"
"           MSG/S (100): what the server did to them, control loss and latency,\n"
"           server memory\n"
"  webhooks --messages M [--endpoints E] [--publishers P] [--rate MSG/S] [--url URL]\n"
"           E endpoints at the bench's own HTTP receiver, for the messages of R;\n"
"           M publishes: webhook deliveries/s, distinct webhook-ids, missing and\n"
"           duplicates, publishes/s meanwhile, the courier's memory. With --url\n"
"           the endpoints point there and nothing is received: the bench waits\n"
"           --settle S after publishing and reports the queue and the courier\n"
"  workflows --workflows N [--connections P] [--bulk K]\n"
"           a new definition of two steps (one approval each, by role); N instances\n"
"           created, then approved step by step, one request each or K ids per\n"
"           POST /api/workflows/bulk: committed transitions/s, request latency,\n"
"           errors, every instance approved at the end; with --token (role admin)\n"
"           one client counts the events of the workflows room\n"
"common options:\n"
"  -c FILE             take listen, admin_listen, api_key and socketio_path from a\n"
"                      configuration\n"
"  --ws-url HOST:PORT  client listener (default 127.0.0.1:8080)\n"
"  --api-url HOST:PORT admin listener (default 127.0.0.1:8081)\n"
"  --api-key KEY       API key (default HERALD_API_KEY)\n"
"  --token JWT         token for the WebSocket clients (default anonymous)\n"
"  --protocol P        fanout, conns: native (/ws, default) or socketio (Engine.IO 4\n"
"                      and Socket.IO 5 over WebSocket on socketio_path)\n"
"  --pipeline D        requests in flight per HTTP connection (default 1; replay 16)\n"
"  --per-source N      connections per source address 127.0.0.x (default 1000,\n"
"                      the server's default max_connections_per_ip)\n"
"  --concurrency N     WebSocket handshakes in flight (default 256)\n"
"  --timeout S         limit of each phase in seconds (default 60)\n"
"  --match PREFIX      processes to measure in conns (default \"heraldd:\")\n"
"  --quiet             print only the JSON result line\n"
"Rooms default to bench:MODE (replay, webhooks: a new bench:MODE-XXXX room), so the server\n"
"needs a [namespace bench] with subscribe = public; replay also needs history_size\n"
"and replay_limit of at least M. Exit status: 0, 1 on loss, errors or timeout, 2 usage.\n");
}

static long opt_long(const char *name, const char *s, long min)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min) {
		fprintf(stderr, "herald-bench: %s needs an integer >= %ld\n", name, min);
		exit(2);
	}
	return v;
}

static double opt_double(const char *name, const char *s)
{
	char *end;
	double v = strtod(s, &end);
	if (end == s || *end || v < 0 || !isfinite(v)) {
		fprintf(stderr, "herald-bench: %s needs a non-negative number\n", name);
		exit(2);
	}
	return v;
}

/* "ws://host:port/path", "http://host:port" or "host:port" into addr and host. */
static int parse_url(const char *url, struct sockaddr_in *addr, char *host, size_t hostlen)
{
	const char *p = strstr(url, "://") ? strstr(url, "://") + 3 : url;
	snprintf(host, hostlen, "%.*s", (int)strcspn(p, "/"), p);
	if (parse_hostport(host, addr) < 0)
		return -1;
	if (addr->sin_addr.s_addr == htonl(INADDR_ANY))
		addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return 0;
}

/* ---- clocks and latency histograms ------------------------------------------------ */

static int64_t wall_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Log-linear buckets, as HdrHistogram: exact below 128 µs, then 64 buckets
 * per power of two (1.6% resolution) up to 2^40 µs. */
#define HIST_LINEAR 128
#define HIST_BUCKETS (64 * 35 + HIST_LINEAR)

struct hist {
	uint64_t count[HIST_BUCKETS];
	uint64_t n;
	int64_t max;
};

static size_t hist_index(uint64_t v)
{
	if (v < HIST_LINEAR)
		return (size_t)v;
	int shift = 63 - __builtin_clzll(v) - 6;
	size_t i = (size_t)shift * 64 + (size_t)(v >> shift);
	return MIN(i, HIST_BUCKETS - 1);
}

/* The largest value a bucket holds. */
static uint64_t hist_value(size_t i)
{
	if (i < HIST_LINEAR)
		return i;
	int shift = (int)(i / 64) - 1;
	return ((uint64_t)(i - (size_t)shift * 64 + 1) << shift) - 1;
}

static void hist_add(struct hist *h, int64_t v)
{
	if (v < 0)
		v = 0;          /* clocks of one machine: only a step can do this */
	h->count[hist_index((uint64_t)v)]++;
	h->n++;
	if (v > h->max)
		h->max = v;
}

static int64_t hist_percentile(const struct hist *h, double p)
{
	if (!h->n)
		return 0;
	uint64_t want = (uint64_t)ceil(p / 100.0 * (double)h->n), seen = 0;
	for (size_t i = 0; i < HIST_BUCKETS; i++) {
		seen += h->count[i];
		if (seen >= want && h->count[i])
			return MIN((int64_t)hist_value(i), h->max);
	}
	return h->max;
}

static json_t *hist_json(const struct hist *h)
{
	return json_pack("{s:I, s:I, s:I, s:I, s:I}",
			 "p50", (json_int_t)hist_percentile(h, 50),
			 "p90", (json_int_t)hist_percentile(h, 90),
			 "p99", (json_int_t)hist_percentile(h, 99),
			 "p99.9", (json_int_t)hist_percentile(h, 99.9),
			 "max", (json_int_t)h->max);
}

static void hist_print(const char *what, const struct hist *h)
{
	if (opt.quiet || !h->n)
		return;
	printf("  %s latency (us): p50 %lld  p90 %lld  p99 %lld  p99.9 %lld  max %lld\n", what,
	       (long long)hist_percentile(h, 50), (long long)hist_percentile(h, 90),
	       (long long)hist_percentile(h, 99), (long long)hist_percentile(h, 99.9),
	       (long long)h->max);
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	if (opt.quiet)
		return;
	va_list ap;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fflush(stdout);
}

/* Seconds from from_us to to_us; 0 when either never happened. */
static double span(int64_t from_us, int64_t to_us)
{
	return from_us && to_us > from_us ? (double)(to_us - from_us) / 1e6 : 0;
}

static double rate_per_sec(double n, int64_t from_us, int64_t to_us)
{
	double s = span(from_us, to_us);
	return s > 0 ? n / s : 0;
}

/* ---- phases ----------------------------------------------------------------------- */

static bool (*phase_done)(void);
static void (*phase_progress)(void);

/* Stops the loop once the running phase's condition holds. */
static void phase_check(void)
{
	if (phase_done && phase_done())
		ev_break(bench_loop, EVBREAK_ALL);
}

static void phase_timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	ev_break(loop, EVBREAK_ALL);
}

static void phase_progress_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	if (phase_progress)
		phase_progress();
}

/* Runs the loop until done() or opt.timeout. Returns false on timeout. */
static bool phase_run(const char *what, bool (*done)(void), void (*progress)(void))
{
	if (done())
		return true;
	ev_timer limit, tick;
	ev_timer_init(&limit, phase_timeout_cb, opt.timeout, 0);
	ev_timer_init(&tick, phase_progress_cb, 1, 1);
	ev_timer_start(bench_loop, &limit);
	if (progress && isatty(STDERR_FILENO) && !opt.quiet)
		ev_timer_start(bench_loop, &tick);
	phase_done = done;
	phase_progress = progress;
	ev_now_update(bench_loop);
	ev_run(bench_loop, 0);
	ev_timer_stop(bench_loop, &limit);
	ev_timer_stop(bench_loop, &tick);
	phase_done = NULL;
	phase_progress = NULL;
	if (progress && isatty(STDERR_FILENO) && !opt.quiet)
		fprintf(stderr, "\r\033[K");
	if (done())
		return true;
	fprintf(stderr, "herald-bench: %s: timed out after %g s\n", what, opt.timeout);
	return false;
}

static void io_want(ev_io *io, int events)
{
	if ((io->events & (EV_READ | EV_WRITE)) == events)
		return;
	ev_io_stop(bench_loop, io);
	ev_io_set(io, io->fd, events);
	ev_io_start(bench_loop, io);
}

/* Raises the descriptor limit to the hard limit; returns the limit. */
static long raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return 1024;
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	getrlimit(RLIMIT_NOFILE, &rl);
	return rl.rlim_cur == RLIM_INFINITY ? 1L << 20 : (long)rl.rlim_cur;
}

/* ---- HTTP publishers -------------------------------------------------------------- */

/* One keep-alive HTTP/1.1 connection to the admin listener with up to
 * opt.pipeline requests in flight; responses come back in order. */
struct pubconn {
	ev_io io;               /* first: the watcher is the connection */
	int fd;
	bool dead;
	struct buf out;
	struct buf in;
	int inflight;
	int head;               /* ring index of the oldest request in flight */
	int64_t sent_at[BENCH_PIPELINE_MAX];
	long req[BENCH_PIPELINE_MAX];   /* index of each request in flight */
};

static struct {
	struct pubconn *conns;
	long nconns;
	long dead;
	long total;             /* requests to make */
	long sent, acked, failed;
	int64_t first_sent, last_ack;   /* mono µs */
	struct hist lat;        /* request to response */
	char (*rooms)[256];
	long nrooms;
	bool paced;             /* rate mode: the timer sends, responses do not */
	ev_timer pace;
	int64_t pace_start;
	long next_conn;
	int64_t min_seq, max_seq;
	char epoch[64];
	char error[300];
	struct buf head;        /* the request head up to Content-Length */
	/* Other requests than publishes: request appends the i-th request to
	 * out; response judges its answer (true: acknowledged). */
	void (*request)(struct buf *out, long i);
	bool (*response)(long i, int status, const char *body, size_t len);
} pub;

static void set_error(char *dst, size_t n, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void set_error(char *dst, size_t n, const char *fmt, ...)
{
	if (*dst)
		return;         /* the first error explains the rest */
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(dst, n, fmt, ap);
	va_end(ap);
}

static void pub_kill(struct pubconn *pc, const char *why)
{
	if (pc->dead)
		return;
	if (pc->inflight || pub.sent < pub.total)     /* not an idle one closed after the last */
		set_error(pub.error, sizeof(pub.error), "publisher connection: %s", why);
	pc->dead = true;
	pub.dead++;
	pub.failed += pc->inflight;
	pc->inflight = 0;
	ev_io_stop(bench_loop, &pc->io);
	close(pc->fd);
	pc->fd = -1;
}

/* Appends a request with a JSON body to the admin listener to out. */
static void http_request(struct buf *out, const char *method, const char *path,
			 const char *body, size_t blen, bool close_after)
{
	buf_printf(out, "%s %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n"
		   "Content-Type: application/json\r\nContent-Length: %zu\r\n%s\r\n",
		   method, path, api_host, opt.api_key, blen,
		   close_after ? "Connection: close\r\n" : "");
	buf_append(out, body ? body : "", blen);
}

/* Appends one publish request; its data carries the index and the wall-clock
 * send time, which subscribers subtract from their own clock. */
static void pub_queue(struct pubconn *pc)
{
	long i = pub.sent++;
	if (pub.request) {
		pub.request(&pc->out, i);
	} else {
		char body[512];
		int n = snprintf(body, sizeof(body),
				 "{\"room\":\"%s\",\"event\":\"bench\",\"data\":{\"i\":%ld,\"t\":%lld}}",
				 pub.rooms[i % pub.nrooms], i, (long long)wall_us());
		buf_append(&pc->out, pub.head.data, pub.head.len);
		buf_printf(&pc->out, "%d\r\n\r\n", n);
		buf_append(&pc->out, body, (size_t)n);
	}
	int64_t now = mono_us();
	int slot = (pc->head + pc->inflight) % BENCH_PIPELINE_MAX;
	pc->sent_at[slot] = now;
	pc->req[slot] = i;
	pc->inflight++;
	if (!pub.first_sent)
		pub.first_sent = now;
}

/* Writes what out holds without blocking. 0, or -1 with errno on error. */
static int send_buf(int fd, struct buf *out)
{
	size_t off = 0;
	int rc = 0;
	while (off < out->len) {
		ssize_t n = send(fd, out->data + off, out->len - off, MSG_NOSIGNAL);
		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (!(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)))
			rc = -1;
		break;
	}
	buf_consume(out, off);
	return rc;
}

static void pub_flush(struct pubconn *pc)
{
	if (send_buf(pc->fd, &pc->out) < 0) {
		const char *why = strerror(errno);
		buf_reset(&pc->out);
		pub_kill(pc, why);
		return;
	}
	io_want(&pc->io, pc->out.len ? EV_READ | EV_WRITE : EV_READ);
}

/* Closed loop: as many requests in flight as the pipeline allows. */
static void pub_fill(struct pubconn *pc)
{
	while (!pub.paced && !pc->dead && pc->inflight < opt.pipeline && pub.sent < pub.total)
		pub_queue(pc);
}

/* Reads "key":<integer> after p; 0 when absent. */
static int64_t find_int(const char *p, size_t n, const char *key)
{
	size_t kl = strlen(key);
	const char *k = memmem(p, n, key, kl);
	if (!k)
		return 0;
	int64_t v = 0;
	for (const char *d = k + kl; d < p + n && *d >= '0' && *d <= '9'; d++)
		v = v * 10 + (*d - '0');
	return v;
}

static void pub_response(struct pubconn *pc, int status, const char *body, size_t len)
{
	if (pc->inflight == 0) {
		pub_kill(pc, "response without a request");
		return;
	}
	int64_t now = mono_us();
	long i = pc->req[pc->head];
	hist_add(&pub.lat, now - pc->sent_at[pc->head]);
	pc->head = (pc->head + 1) % BENCH_PIPELINE_MAX;
	pc->inflight--;
	pub.last_ack = now;
	if (pub.response) {
		if (pub.response(i, status, body, len))
			pub.acked++;
		else
			pub.failed++;
		return;
	}
	if (status != 200) {
		pub.failed++;
		set_error(pub.error, sizeof(pub.error), "publish: HTTP %d %.*s", status,
			  (int)MIN(len, 200), body);
		return;
	}
	pub.acked++;
	int64_t seq = find_int(body, len, "\"seq\":");
	if (seq && (!pub.min_seq || seq < pub.min_seq))
		pub.min_seq = seq;
	if (seq > pub.max_seq)
		pub.max_seq = seq;
	if (!pub.epoch[0]) {
		const char *e = memmem(body, len, "\"epoch\":\"", 9);
		const char *end = e ? memchr(e + 9, '"', len - (size_t)(e + 9 - body)) : NULL;
		if (end && end - e - 9 < (long)sizeof(pub.epoch))
			snprintf(pub.epoch, sizeof(pub.epoch), "%.*s", (int)(end - e - 9), e + 9);
	}
}

static void pub_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct pubconn *pc = (struct pubconn *)w;
	if (revents & EV_READ) {
		buf_reserve(&pc->in, BENCH_READ_CHUNK);
		ssize_t n = recv(pc->fd, pc->in.data + pc->in.len, pc->in.cap - pc->in.len, 0);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
			pub_kill(pc, n == 0 ? "closed by the server" : strerror(errno));
			phase_check();
			return;
		}
		pc->in.len += n > 0 ? (size_t)n : 0;
		size_t off = 0;
		for (;;) {
			struct wsclient_response r;
			int h = wsclient_parse_response(pc->in.data + off, pc->in.len - off, &r);
			if (h == -2 || (h > 0 && pc->in.len - off - (size_t)h < r.content_length))
				break;
			if (h < 0) {
				pub_kill(pc, "malformed response");
				phase_check();
				return;
			}
			pub_response(pc, r.status, pc->in.data + off + h, r.content_length);
			off += (size_t)h + r.content_length;
			if (r.close) {
				pub_kill(pc, "server closed the keep-alive connection");
				phase_check();
				return;
			}
		}
		buf_consume(&pc->in, off);
		pub_fill(pc);
	}
	if (!pc->dead)
		pub_flush(pc);
	phase_check();
}

/* Paced mode: every millisecond, send what the schedule says is due. */
static void pub_pace_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	long due = (long)((double)(mono_us() - pub.pace_start) * opt.rate / 1e6) + 1;
	due = MIN(due, pub.total);
	long tried = 0;
	while (pub.sent < due && tried < pub.nconns) {
		struct pubconn *pc = &pub.conns[pub.next_conn];
		pub.next_conn = (pub.next_conn + 1) % pub.nconns;
		if (pc->dead || pc->inflight >= opt.pipeline) {
			tried++;
			continue;
		}
		tried = 0;
		pub_queue(pc);
		pub_flush(pc);
	}
	if (pub.sent >= pub.total)
		ev_timer_stop(loop, w);
}

/* Opens n connections and prepares rooms; sending starts with pub_start. */
static void pub_open(long n, long total, const char *room, long nrooms)
{
	pub.conns = xcalloc((size_t)n, sizeof(*pub.conns));
	pub.nconns = n;
	pub.total = total;
	pub.nrooms = nrooms;
	pub.rooms = xcalloc((size_t)nrooms, sizeof(*pub.rooms));
	for (long i = 0; i < nrooms; i++) {
		if (nrooms == 1)
			snprintf(pub.rooms[i], sizeof(pub.rooms[i]), "%s", room);
		else
			snprintf(pub.rooms[i], sizeof(pub.rooms[i]), "%s-%ld", room, i);
	}
	buf_printf(&pub.head, "POST /api/publish HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n"
		   "Content-Type: application/json\r\nContent-Length: ", api_host, opt.api_key);
	for (long i = 0; i < n; i++) {
		struct pubconn *pc = &pub.conns[i];
		int one = 1;
		pc->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (pc->fd < 0) {
			pc->dead = true;
			pub.dead++;
			set_error(pub.error, sizeof(pub.error), "socket: %s", strerror(errno));
			continue;
		}
		setsockopt(pc->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (connect(pc->fd, (struct sockaddr *)&api_addr, sizeof(api_addr)) < 0 &&
		    errno != EINPROGRESS) {
			ev_io_init(&pc->io, pub_io_cb, pc->fd, EV_READ);
			pub_kill(pc, strerror(errno));
			continue;
		}
		ev_io_init(&pc->io, pub_io_cb, pc->fd, EV_READ);
		ev_io_start(bench_loop, &pc->io);
	}
}

static void pub_start(void)
{
	if (opt.rate > 0) {
		pub.paced = true;
		pub.pace_start = mono_us();
		ev_timer_init(&pub.pace, pub_pace_cb, 0, 0.001);
		ev_timer_again(bench_loop, &pub.pace);
		return;
	}
	for (long i = 0; i < pub.nconns; i++) {
		pub_fill(&pub.conns[i]);
		if (!pub.conns[i].dead)
			pub_flush(&pub.conns[i]);
	}
}

/* Another round of total requests on the connections already open. */
static void pub_rearm(long total)
{
	pub.total = total;
	pub.sent = pub.acked = pub.failed = 0;
	pub.first_sent = pub.last_ack = 0;
	memset(&pub.lat, 0, sizeof(pub.lat));
}

static bool pub_done(void)
{
	return pub.acked + pub.failed >= pub.total || pub.dead == pub.nconns;
}

static void pub_progress(void)
{
	fprintf(stderr, "\r\033[Kpublished %ld/%ld", pub.acked, pub.total);
}

static void pub_close(void)
{
	ev_timer_stop(bench_loop, &pub.pace);
	for (long i = 0; i < pub.nconns; i++) {
		struct pubconn *pc = &pub.conns[i];
		if (!pc->dead) {
			ev_io_stop(bench_loop, &pc->io);
			close(pc->fd);
		}
		buf_free(&pc->out);
		buf_free(&pc->in);
	}
	free(pub.conns);
	free(pub.rooms);
	buf_free(&pub.head);
}

/* ---- WebSocket subscribers ---------------------------------------------------------- */

/* Socket.IO clients pass through SUB_CONNECTING (Engine.IO open packet
 * received, Socket.IO CONNECT sent) between the upgrade and subscribing. */
enum sub_state { SUB_NEW, SUB_HANDSHAKE, SUB_CONNECTING, SUB_SUBSCRIBING, SUB_READY, SUB_DEAD };

struct sub {
	ev_io io;               /* first: the watcher is the subscriber */
	struct wsclient ws;
	enum sub_state state;
	int64_t last_seq;       /* in the bench room */
};

static struct {
	struct sub *v;
	long n;
	long index_base;        /* global index of v[0], for source addresses */
	int src_first;          /* first source address: 127.0.0.src_first */
	long started, handshaking, ready, dead;
	bool subscribe;         /* subscribe after welcome (else ready at welcome) */
	bool lean;              /* idle connections: drop buffers once ready */
	int64_t since;          /* replay: subscribe with since {seq, epoch}; -1: live */
	char path[JWT_MAX_LEN + 320];
	char *subscribe_msg;
	size_t subscribe_len;
	char *connect_msg;      /* Socket.IO: the CONNECT packet, with the token */
	size_t connect_len;
	char ev_prefix[300];    /* how a bench room event starts, up to its seq */
	size_t ev_prefix_len;
	uint64_t received, gaps, dups;
	int64_t last_event, subscribe_sent;   /* mono µs */
	bool recovered;
	int64_t replayed;
	struct hist lat;        /* publish to delivery, from the payload's t */
	char error[300];
} subs;

static void sub_start_more(void);

static void sub_kill(struct sub *s, const char *why)
{
	if (s->state == SUB_DEAD)
		return;
	set_error(subs.error, sizeof(subs.error), "%s", why);
	if (s->state != SUB_READY)
		subs.handshaking--;
	else
		subs.ready--;
	s->state = SUB_DEAD;
	subs.dead++;
	ev_io_stop(bench_loop, &s->io);
	wsclient_free(&s->ws);
	sub_start_more();
}

static void sub_ready(struct sub *s)
{
	s->state = SUB_READY;
	subs.handshaking--;
	subs.ready++;
	if (subs.lean && s->ws.in_off == s->ws.in.len) {
		/* Idle from now on: give the read buffer back (pings re-grow it). */
		buf_free(&s->ws.in);
		s->ws.in_off = 0;
	}
	sub_start_more();
}

/* The hot path: an event of the bench room. No allocation, no JSON parser:
 * the server's encoding is fixed, so seq follows the prefix and the data's
 * "t" is the first such key after it. */
static void sub_event(struct sub *s, const char *p, size_t n, int64_t now_wall, int64_t now_mono)
{
	int64_t seq = 0;
	const char *d = p + subs.ev_prefix_len, *end = p + n;
	for (; d < end && *d >= '0' && *d <= '9'; d++)
		seq = seq * 10 + (*d - '0');
	if (seq <= s->last_seq) {
		subs.dups++;
	} else {
		subs.gaps += (uint64_t)(seq - s->last_seq - 1);
		s->last_seq = seq;
	}
	subs.received++;
	subs.last_event = now_mono;
	const char *t = memmem(d, (size_t)(end - d), "\"t\":", 4);
	if (t) {
		int64_t sent = 0;
		for (t += 4; t < end && *t >= '0' && *t <= '9'; t++)
			sent = sent * 10 + (*t - '0');
		hist_add(&subs.lat, now_wall - sent);
	}
}

static bool starts_with(const char *p, size_t n, const char *prefix)
{
	size_t k = strlen(prefix);
	return n >= k && memcmp(p, prefix, k) == 0;
}

/* Connected (welcome, or Socket.IO's CONNECT reply): subscribes, or is ready
 * when there is nothing to subscribe to. */
static void sub_subscribe(struct sub *s)
{
	if (!subs.subscribe) {
		sub_ready(s);
		return;
	}
	wsclient_queue(&s->ws, WS_OP_TEXT, subs.subscribe_msg, subs.subscribe_len);
	s->state = SUB_SUBSCRIBING;
	subs.subscribe_sent = mono_us();
}

/* Everything but events: rare, parsed properly. */
static void sub_control(struct sub *s, const char *p, size_t n)
{
	if (starts_with(p, n, "{\"type\":\"welcome\"")) {
		if (s->state != SUB_HANDSHAKE)
			return;
		sub_subscribe(s);
		return;
	}
	if (!starts_with(p, n, "{\"type\":\"subscribed\"") && !starts_with(p, n, "{\"type\":\"error\""))
		return;
	json_t *v = json_loadb(p, n, 0, NULL);
	const char *type = json_string_value(json_object_get(v, "type"));
	const char *room = json_string_value(json_object_get(v, "room"));
	if (type && strcmp(type, "subscribed") == 0 && room && strcmp(room, opt.room) == 0 &&
	    s->state == SUB_SUBSCRIBING) {
		if (subs.since < 0)
			s->last_seq = json_integer_value(json_object_get(v, "seq"));
		subs.recovered = json_is_true(json_object_get(v, "recovered"));
		subs.replayed = json_integer_value(json_object_get(v, "replayed"));
		sub_ready(s);
	} else if (type && strcmp(type, "error") == 0) {
		char why[300];
		snprintf(why, sizeof(why), "server error %s: %s",
			 json_string_value(json_object_get(v, "code")),
			 json_string_value(json_object_get(v, "message")));
		if (s->state != SUB_READY)
			sub_kill(s, why);
		else
			set_error(subs.error, sizeof(subs.error), "%s", why);
	}
	json_decref(v);
}

/* Socket.IO: the Engine.IO open packet, the CONNECT reply, the subscribe
 * ack (id 0), errors. Engine.IO pings are answered before this is called. */
static void sub_control_sio(struct sub *s, const char *p, size_t n)
{
	char why[300];
	if (starts_with(p, n, "0{")) {
		if (s->state != SUB_HANDSHAKE)
			return;
		wsclient_queue(&s->ws, WS_OP_TEXT, subs.connect_msg, subs.connect_len);
		s->state = SUB_CONNECTING;
		return;
	}
	if (starts_with(p, n, "40")) {
		if (s->state != SUB_CONNECTING)
			return;
		sub_subscribe(s);
		return;
	}
	if (starts_with(p, n, "44")) {
		snprintf(why, sizeof(why), "Socket.IO connect_error: %.*s", (int)MIN(n - 2, 200),
			 p + 2);
		sub_kill(s, why);
		return;
	}
	if (starts_with(p, n, "41") || (n == 1 && p[0] == '1')) {
		sub_kill(s, n == 1 ? "Engine.IO close from the server"
				   : "Socket.IO DISCONNECT from the server");
		return;
	}
	bool is_ack = starts_with(p, n, "430[");
	if (!is_ack && !starts_with(p, n, "42[\"error\""))
		return;
	json_t *v = json_loadb(p + (is_ack ? 3 : 2), n - (is_ack ? 3 : 2), 0, NULL);
	json_t *a = json_array_get(v, is_ack ? 0 : 1);
	const char *room = json_string_value(json_object_get(a, "room"));
	const char *code = json_string_value(json_object_get(a, "error"));
	const char *message = json_string_value(json_object_get(a, "message"));
	if (is_ack && json_is_true(json_object_get(a, "success"))) {
		if (room && strcmp(room, opt.room) == 0 && s->state == SUB_SUBSCRIBING) {
			s->last_seq = json_integer_value(json_object_get(a, "seq"));
			sub_ready(s);
		}
	} else if (json_is_object(a)) {
		snprintf(why, sizeof(why), "server error %s: %s", code ? code : "(no code)",
			 message ? message : "(no message)");
		if (s->state != SUB_READY)
			sub_kill(s, why);
		else
			set_error(subs.error, sizeof(subs.error), "%s", why);
	} else {
		sub_kill(s, "malformed Socket.IO packet from the server");
	}
	json_decref(v);
}

static void sub_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct sub *s = (struct sub *)w;
	if (revents & EV_READ) {
		wsclient_read(&s->ws);
		int64_t now_wall = wall_us(), now_mono = mono_us();
		struct wsclient_msg m;
		int r;
		while ((r = wsclient_next(&s->ws, &m)) > 0) {
			if (m.len > subs.ev_prefix_len &&
			    memcmp(m.data, subs.ev_prefix, subs.ev_prefix_len) == 0)
				sub_event(s, m.data, m.len, now_wall, now_mono);
			else if (!opt.socketio)
				sub_control(s, m.data, m.len);
			else if (m.len == 1 && m.data[0] == '2')
				wsclient_queue(&s->ws, WS_OP_TEXT, "3", 1);   /* Engine.IO pong */
			else
				sub_control_sio(s, m.data, m.len);
			if (s->state == SUB_DEAD)
				return;
		}
		if (r < 0) {
			char why[300];
			if (s->ws.http_status)
				snprintf(why, sizeof(why), "upgrade refused with HTTP %d", s->ws.http_status);
			else if (s->ws.close_code)
				snprintf(why, sizeof(why), "%s (close code %d)", s->ws.error, s->ws.close_code);
			else
				snprintf(why, sizeof(why), "%s", s->ws.error);
			wsclient_flush(&s->ws);
			sub_kill(s, why);
			phase_check();
			return;
		}
	}
	int f = wsclient_flush(&s->ws);
	if (f < 0) {
		sub_kill(s, s->ws.error);
	} else {
		io_want(&s->io, f ? EV_READ : EV_READ | EV_WRITE);
		if (subs.lean && s->state == SUB_READY && !s->ws.out.len)
			buf_free(&s->ws.out);
	}
	phase_check();
}

/* 127.0.0.x for the i-th connection: opt.per_source connections per address. */
static void source_addr(struct sockaddr_in *sa, long i)
{
	long host = subs.src_first + i / opt.per_source;
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_addr.s_addr = htonl((in_addr_t)(0x7f000000 | (host & 0xffffff)));
}

/* Keeps opt.concurrency handshakes in flight: a burst of thousands of SYNs
 * would overflow the listen queue and stall on retransmits. */
static void sub_start_more(void)
{
	static bool starting;
	if (starting)
		return;         /* a failed start kills, and killing starts more */
	starting = true;
	while (subs.started < subs.n && subs.handshaking < opt.concurrency) {
		struct sub *s = &subs.v[subs.started];
		struct sockaddr_in src;
		source_addr(&src, subs.index_base + subs.started);
		subs.started++;
		subs.handshaking++;
		s->state = SUB_HANDSHAKE;
		s->last_seq = subs.since;
		if (wsclient_start(&s->ws, &ws_addr, &src, subs.path, ws_host) < 0) {
			char why[200];
			snprintf(why, sizeof(why), "connect from %s: %s", inet_ntoa(src.sin_addr),
				 strerror(errno));
			s->ws.fd = -1;
			sub_kill(s, why);
			continue;
		}
		ev_io_init(&s->io, sub_io_cb, s->ws.fd, EV_READ | EV_WRITE);
		ev_io_start(bench_loop, &s->io);
	}
	starting = false;
}

/* Prepares n subscribers to room (subscribe: false for idle connections)
 * and starts connecting them. since >= 0: replay from there (epoch). */
static void subs_open(long n, long index_base, int src_first, bool subscribe, int64_t since,
		      const char *epoch)
{
	subs.v = xcalloc((size_t)n, sizeof(*subs.v));
	subs.n = n;
	subs.index_base = index_base;
	subs.src_first = src_first;
	subs.subscribe = subscribe;
	subs.since = since;
	struct buf m = { 0 };
	if (opt.socketio) {
		/* Engine.IO 4 over WebSocket; the token goes in CONNECT's auth, as
		 * socket.io-client's {auth: {token}} sends it. Events are emitted
		 * under the name fanout publishes with ("bench"). */
		snprintf(subs.path, sizeof(subs.path), "%s?EIO=4&transport=websocket", opt.sio_path);
		struct buf c = { 0 };
		buf_appends(&c, "40");
		if (opt.token) {
			buf_appends(&c, "{\"token\":");
			buf_append_json_str(&c, opt.token, strlen(opt.token));
			buf_appends(&c, "}");
		}
		subs.connect_msg = c.data;
		subs.connect_len = c.len;
		buf_appends(&m, "420[\"subscribe\",{\"room\":");
		buf_append_json_str(&m, opt.room, strlen(opt.room));
		buf_appends(&m, "}]");
		subs.ev_prefix_len = (size_t)snprintf(subs.ev_prefix, sizeof(subs.ev_prefix),
			"42[\"bench\",{\"type\":\"bench\",\"room\":\"%s\",\"seq\":", opt.room);
	} else {
		snprintf(subs.path, sizeof(subs.path), "/ws%s%s", opt.token ? "?token=" : "",
			 opt.token ? opt.token : "");
		buf_appends(&m, "{\"type\":\"subscribe\",\"room\":");
		buf_append_json_str(&m, opt.room, strlen(opt.room));
		if (since >= 0) {
			buf_printf(&m, ",\"since\":{\"seq\":%lld,\"epoch\":", (long long)since);
			buf_append_json_str(&m, epoch, strlen(epoch));
			buf_appends(&m, "}");
		}
		buf_appends(&m, "}");
		subs.ev_prefix_len = (size_t)snprintf(subs.ev_prefix, sizeof(subs.ev_prefix),
			"{\"type\":\"event\",\"room\":\"%s\",\"seq\":", opt.room);
	}
	subs.subscribe_msg = m.data;
	subs.subscribe_len = m.len;
	sub_start_more();
}

static bool subs_settled(void)
{
	return subs.ready + subs.dead >= subs.n;
}

static void subs_progress(void)
{
	fprintf(stderr, "\r\033[Kconnected %ld/%ld (failed %ld)", subs.ready, subs.n, subs.dead);
}

static void subs_close(void)
{
	for (long i = 0; i < subs.n; i++) {
		struct sub *s = &subs.v[i];
		if (s->state != SUB_NEW && s->state != SUB_DEAD) {
			ev_io_stop(bench_loop, &s->io);
			wsclient_free(&s->ws);
		}
	}
	free(subs.v);
	free(subs.subscribe_msg);
	free(subs.connect_msg);
}

/* ---- results ------------------------------------------------------------------------ */

/* Prints the one-line JSON result (the last line of the output) and frees it. */
static void print_result(json_t *v)
{
	char *s = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER);
	printf("%s\n", s);
	fflush(stdout);
	free(s);
	json_decref(v);
}

static void fail_early(const char *what, const char *error)
{
	fprintf(stderr, "herald-bench: %s: %s\n", what, error[0] ? error : "failed");
	if (strstr(error, "forbidden"))
		fprintf(stderr, "herald-bench: the server needs a namespace for %s, e.g.\n"
				"  [namespace %.*s]\n  subscribe = public\n", opt.room,
			(int)strcspn(opt.room, ":"), opt.room);
}

/* ---- fanout ------------------------------------------------------------------------- */

static long fanout_expected(void)
{
	return pub.acked * subs.ready;
}

static bool fanout_done(void)
{
	return pub_done() && (long)(subs.received - subs.dups) >= fanout_expected();
}

static void fanout_progress(void)
{
	fprintf(stderr, "\r\033[Kpublished %ld/%ld, delivered %llu/%llu", pub.acked, pub.total,
		(unsigned long long)subs.received,
		(unsigned long long)(pub.total * subs.ready));
}

static int run_fanout(void)
{
	long limit = raise_nofile();
	if (opt.subscribers + opt.publishers + BENCH_FD_RESERVE > limit) {
		fprintf(stderr, "herald-bench: %ld subscribers need more than the %ld descriptors "
				"a process may open\n", opt.subscribers, limit);
		return 2;
	}
	if (!opt.pipeline)
		opt.pipeline = 1;
	char rate[48] = "as fast as acknowledged";
	if (opt.rate > 0)
		snprintf(rate, sizeof(rate), "%g/s", opt.rate);
	say("fanout: %ld %s subscribers in %s, %ld messages over %ld HTTP connections, rate %s\n",
	    opt.subscribers, protocol_name(), opt.room, opt.messages, opt.publishers, rate);
	int64_t t0 = mono_us();
	subs_open(opt.subscribers, 0, 1, true, -1, NULL);
	bool ok = phase_run("subscribing", subs_settled, subs_progress);
	if (!ok || subs.dead) {
		fail_early("subscribing", subs.error);
		return 1;
	}
	say("  %ld subscribed in %.2f s\n", subs.ready, (double)(mono_us() - t0) / 1e6);

	pub_open(opt.publishers, opt.messages, opt.room, 1);
	pub_start();
	ok = phase_run("publishing and delivering", fanout_done, fanout_progress);
	long expected = pub.total * opt.subscribers;
	long lost = expected - (long)(subs.received - subs.dups);
	double dps = rate_per_sec((double)subs.received, pub.first_sent, subs.last_event);
	double pps = rate_per_sec((double)pub.acked, pub.first_sent, pub.last_ack);
	say("  published %ld (failed %ld) at %.0f publishes/s acknowledged\n", pub.acked, pub.failed, pps);
	say("  delivered %llu of %ld in %.3f s: %.0f deliveries/s\n",
	    (unsigned long long)subs.received, expected, span(pub.first_sent, subs.last_event), dps);
	say("  lost %ld, gaps %llu, duplicates %llu, subscribers dropped %ld\n", lost,
	    (unsigned long long)subs.gaps, (unsigned long long)subs.dups, subs.dead);
	hist_print("publish-to-delivery", &subs.lat);
	if (pub.error[0])
		fprintf(stderr, "herald-bench: %s\n", pub.error);
	if (subs.error[0])
		fprintf(stderr, "herald-bench: %s\n", subs.error);
	print_result(json_pack("{s:s, s:s, s:I, s:s, s:I, s:I, s:f, s:I, s:I, s:I, s:I, s:I, s:I, "
			       "s:I, s:I, s:f, s:f, s:o, s:b}",
		"mode", "fanout", "protocol", protocol_name(),
		"subscribers", (json_int_t)opt.subscribers, "room", opt.room,
		"messages", (json_int_t)opt.messages, "publishers", (json_int_t)opt.publishers,
		"rate", opt.rate, "published", (json_int_t)pub.acked,
		"publish_errors", (json_int_t)pub.failed, "expected", (json_int_t)expected,
		"delivered", (json_int_t)subs.received, "lost", (json_int_t)lost,
		"gaps", (json_int_t)subs.gaps, "duplicates", (json_int_t)subs.dups,
		"dropped", (json_int_t)subs.dead, "deliveries_per_sec", dps,
		"publishes_per_sec", pps, "latency_us", hist_json(&subs.lat), "timeout", !ok));
	bool clean = ok && lost == 0 && !pub.failed && !subs.gaps && !subs.dups && !subs.dead;
	pub_close();
	subs_close();
	return clean ? 0 : 1;
}

/* ---- publish ------------------------------------------------------------------------ */

static int run_publish(void)
{
	raise_nofile();
	long conns = opt.connections ? opt.connections : 4;
	if (!opt.pipeline)
		opt.pipeline = 1;
	say("publish: %ld messages to %s%s over %ld connections, pipeline %ld\n", opt.messages,
	    opt.room, opt.rooms_count > 1 ? "-*" : "", conns, opt.pipeline);
	pub_open(conns, opt.messages, opt.room, opt.rooms_count);
	pub_start();
	bool ok = phase_run("publishing", pub_done, pub_progress);
	double pps = rate_per_sec((double)pub.acked, pub.first_sent, pub.last_ack);
	say("  %ld acknowledged, %ld failed in %.3f s: %.0f publishes/s\n", pub.acked, pub.failed,
	    span(pub.first_sent, pub.last_ack), pps);
	hist_print("request", &pub.lat);
	if (pub.error[0])
		fprintf(stderr, "herald-bench: %s\n", pub.error);
	print_result(json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:o, s:b}",
		"mode", "publish", "messages", (json_int_t)opt.messages,
		"connections", (json_int_t)conns, "pipeline", (json_int_t)opt.pipeline,
		"rooms", (json_int_t)opt.rooms_count, "published", (json_int_t)pub.acked,
		"errors", (json_int_t)pub.failed, "publishes_per_sec", pps,
		"latency_us", hist_json(&pub.lat), "timeout", !ok));
	bool clean = ok && pub.acked == opt.messages;
	pub_close();
	return clean ? 0 : 1;
}

/* ---- replay ------------------------------------------------------------------------- */

static int64_t replay_last;

static bool replay_done(void)
{
	return subs_settled() && (subs.dead || subs.v[0].last_seq >= replay_last);
}

static void replay_progress(void)
{
	fprintf(stderr, "\r\033[Kreplayed %llu/%ld", (unsigned long long)subs.received, opt.messages);
}

static int run_replay(void)
{
	if (!opt.pipeline)
		opt.pipeline = 16;
	say("replay: %ld messages in %s\n", opt.messages, opt.room);
	pub_open(opt.publishers, opt.messages, opt.room, 1);
	pub_start();
	bool ok = phase_run("publishing", pub_done, pub_progress);
	if (!ok || pub.acked != opt.messages || !pub.epoch[0]) {
		fail_early("publishing", pub.error);
		return 1;
	}
	say("  published %ld at %.0f publishes/s (seq %lld..%lld)\n", pub.acked,
	    rate_per_sec((double)pub.acked, pub.first_sent, pub.last_ack),
	    (long long)pub.min_seq, (long long)pub.max_seq);
	replay_last = pub.max_seq;
	int64_t since = pub.min_seq - 1;
	subs_open(1, 0, 1, true, since, pub.epoch);
	ok = phase_run("replaying", replay_done, replay_progress);
	/* Others may have published to the room meanwhile: count only ours. */
	long expected = (long)(replay_last - since);
	double mps = rate_per_sec((double)subs.received, subs.subscribe_sent, subs.last_event);
	bool contiguous = !subs.gaps && !subs.dups && subs.v[0].last_seq >= replay_last;
	say("  replayed %llu of %ld in %.3f s: %.0f messages/s, %s, recovered %s\n",
	    (unsigned long long)subs.received, expected, span(subs.subscribe_sent, subs.last_event), mps,
	    contiguous ? "contiguous" : "NOT contiguous", subs.recovered ? "true" : "false");
	if (subs.error[0])
		fprintf(stderr, "herald-bench: %s\n", subs.error);
	if (!subs.recovered || !contiguous)
		fprintf(stderr, "herald-bench: a full replay needs history_size (namespace) and "
				"replay_limit (server) of at least %ld\n", opt.messages);
	print_result(json_pack("{s:s, s:s, s:I, s:I, s:I, s:s, s:I, s:I, s:f, s:b, s:b, s:I, s:I, s:b}",
		"mode", "replay", "room", opt.room, "messages", (json_int_t)opt.messages,
		"since", (json_int_t)since, "last_seq", (json_int_t)replay_last, "epoch", pub.epoch,
		"replayed", (json_int_t)subs.received, "reported_replayed", (json_int_t)subs.replayed,
		"messages_per_sec", mps, "contiguous", contiguous, "recovered", subs.recovered,
		"gaps", (json_int_t)subs.gaps, "duplicates", (json_int_t)subs.dups, "timeout", !ok));
	pub_close();
	subs_close();
	return ok && contiguous && subs.recovered ? 0 : 1;
}

/* ---- conns: memory per idle connection ------------------------------------------------ */

struct procmem {
	pid_t pid;
	long rss_kb, anon_kb, pss_kb;
	char title[48];
};

/* Reads "key:  N kB" from a /proc file; -1 when absent. */
static long proc_kb(pid_t pid, const char *file, const char *key)
{
	char path[64], line[256];
	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, file);
	FILE *fp = fopen(path, "r");
	long v = -1;
	size_t kl = strlen(key);
	while (fp && fgets(line, sizeof(line), fp))
		if (strncmp(line, key, kl) == 0) {
			v = strtol(line + kl, NULL, 10);
			break;
		}
	if (fp)
		fclose(fp);
	return v;
}

/* The process's command line as ps shows it (NULs as spaces). */
static int proc_title(pid_t pid, char *out, size_t outlen)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	FILE *fp = fopen(path, "r");
	if (!fp)
		return -1;
	size_t n = fread(out, 1, outlen - 1, fp);
	fclose(fp);
	while (n && out[n - 1] == '\0')
		n--;
	for (size_t i = 0; i < n; i++)
		if (out[i] == '\0')
			out[i] = ' ';
	out[n] = '\0';
	return 0;
}

/* The processes to measure: --pids, else every process whose command line
 * starts with match. Returns their number. */
static int find_pids(struct procmem *out, int max, const char *match)
{
	int n = 0;
	if (opt.pids) {
		for (const char *p = opt.pids; *p && n < max; p += strcspn(p, ","), p += *p == ',') {
			out[n].pid = (pid_t)strtol(p, NULL, 10);
			if (proc_title(out[n].pid, out[n].title, sizeof(out[n].title)) == 0)
				n++;
		}
		return n;
	}
	DIR *d = opendir("/proc");
	struct dirent *e;
	while (d && (e = readdir(d)) && n < max) {
		if (e->d_name[0] < '1' || e->d_name[0] > '9')
			continue;
		out[n].pid = (pid_t)strtol(e->d_name, NULL, 10);
		if (proc_title(out[n].pid, out[n].title, sizeof(out[n].title)) == 0 &&
		    strncmp(out[n].title, match, strlen(match)) == 0)
			n++;
	}
	if (d)
		closedir(d);
	return n;
}

/* Sums the memory of the processes; fills each one's figures. */
static void measure(struct procmem *p, int n, long sum[3])
{
	sum[0] = sum[1] = sum[2] = 0;
	for (int i = 0; i < n; i++) {
		p[i].rss_kb = proc_kb(p[i].pid, "status", "VmRSS:");
		p[i].anon_kb = proc_kb(p[i].pid, "status", "RssAnon:");
		p[i].pss_kb = proc_kb(p[i].pid, "smaps_rollup", "Pss:");
		sum[0] += MAX(p[i].rss_kb, 0);
		sum[1] += MAX(p[i].anon_kb, 0);
		sum[2] += MAX(p[i].pss_kb, 0);
	}
}

/* What a conns child tells its parent once its connections are open. */
struct conns_report {
	long ready;
	long failed;
	char error[300];
};

static void child_ctl_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	char c;
	if (read(w->fd, &c, 1) <= 0)
		ev_break(loop, EVBREAK_ALL);      /* the parent is done: leave */
}

/* A child: opens count connections, reports, holds them until the parent
 * closes the control socket (or dies). */
static int conns_child(long base, long count, int ctl)
{
	bench_loop = ev_default_loop(EVFLAG_AUTO);
	subs.lean = true;
	subs_open(count, base, 2, false, -1, NULL);
	phase_run("connecting", subs_settled, NULL);
	struct conns_report rep = { subs.ready, count - subs.ready, "" };
	snprintf(rep.error, sizeof(rep.error), "%s", subs.error);
	if (write(ctl, &rep, sizeof(rep)) != (ssize_t)sizeof(rep))
		return 1;
	ev_io cw;
	ev_io_init(&cw, child_ctl_cb, ctl, EV_READ);
	ev_io_start(bench_loop, &cw);
	ev_run(bench_loop, 0);
	subs_close();
	return 0;
}

static int run_conns(void)
{
	long limit = raise_nofile();
	long per_proc = limit - BENCH_FD_RESERVE;
	long nproc = opt.processes ? opt.processes : (opt.connections + per_proc - 1) / per_proc;
	if ((opt.connections + nproc - 1) / nproc > per_proc) {
		fprintf(stderr, "herald-bench: %ld connections in %ld processes exceed %ld descriptors "
				"per process: use more --processes\n", opt.connections, nproc, limit);
		return 2;
	}
	static struct procmem procs[BENCH_MAX_PIDS];
	int np = find_pids(procs, BENCH_MAX_PIDS, opt.match);
	if (np == 0) {
		fprintf(stderr, "herald-bench: no server process found (--match '%s' or --pids)\n",
			opt.match);
		return 1;
	}
	long before[3], after[3];
	measure(procs, np, before);
	say("conns: %ld %s connections over %ld processes, measuring %d server processes\n",
	    opt.connections, protocol_name(), nproc, np);

	pid_t *kids = xcalloc((size_t)nproc, sizeof(*kids));
	int *ctl = xcalloc((size_t)nproc, sizeof(*ctl));
	long base = 0;
	int64_t t0 = mono_us();
	for (long k = 0; k < nproc; k++) {
		long count = opt.connections / nproc + (k < opt.connections % nproc);
		int sv[2];
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
			perror("herald-bench: socketpair");
			return 1;
		}
		fflush(stdout);
		kids[k] = fork();
		if (kids[k] == 0) {
			for (long j = 0; j < k; j++)
				close(ctl[j]);
			close(sv[0]);
			_exit(conns_child(base, count, sv[1]));
		}
		close(sv[1]);
		ctl[k] = sv[0];
		base += count;
	}
	long ready = 0, failed = 0;
	char error[300] = "";
	for (long k = 0; k < nproc; k++) {
		struct conns_report rep;
		struct pollfd p = { .fd = ctl[k], .events = POLLIN };
		int64_t left_ms = (int64_t)(opt.timeout * 1000) - (mono_us() - t0) / 1000;
		if (poll(&p, 1, (int)MAX(left_ms, 0) + 1000) <= 0 ||
		    read(ctl[k], &rep, sizeof(rep)) != (ssize_t)sizeof(rep)) {
			set_error(error, sizeof(error), "process %ld did not report", k + 1);
			failed += opt.connections / nproc;
			continue;
		}
		ready += rep.ready;
		failed += rep.failed;
		if (rep.error[0])
			set_error(error, sizeof(error), "%s", rep.error);
	}
	say("  %ld connected (%ld failed) in %.2f s\n", ready, failed, (double)(mono_us() - t0) / 1e6);
	if (error[0])
		fprintf(stderr, "herald-bench: %s\n", error);
	usleep((useconds_t)(opt.settle * 1e6));
	measure(procs, np, after);
	double per[3];
	for (int i = 0; i < 3; i++)
		per[i] = ready ? (double)(after[i] - before[i]) * 1024.0 / (double)ready : 0;
	json_t *plist = json_array();
	for (int i = 0; i < np; i++) {
		say("  %-24.24s pid %-7d VmRSS %7ld kB  RssAnon %7ld kB  Pss %7ld kB\n", procs[i].title,
		    (int)procs[i].pid, procs[i].rss_kb, procs[i].anon_kb, procs[i].pss_kb);
		json_array_append_new(plist, json_pack("{s:i, s:s, s:I, s:I, s:I}", "pid",
			(int)procs[i].pid, "title", procs[i].title, "rss_kb", (json_int_t)procs[i].rss_kb,
			"anon_kb", (json_int_t)procs[i].anon_kb, "pss_kb", (json_int_t)procs[i].pss_kb));
	}
	say("  server memory: VmRSS %ld -> %ld kB, RssAnon %ld -> %ld kB, Pss %ld -> %ld kB\n",
	    before[0], after[0], before[1], after[1], before[2], after[2]);
	say("  per connection: %.0f bytes (VmRSS), %.0f bytes (RssAnon), %.0f bytes (Pss)\n",
	    per[0], per[1], per[2]);
	print_result(json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:{s:I, s:I, s:I}, "
			       "s:{s:I, s:I, s:I}, s:{s:f, s:f, s:f}, s:o}",
		"mode", "conns", "protocol", protocol_name(),
		"connections", (json_int_t)opt.connections,
		"processes", (json_int_t)nproc, "connected", (json_int_t)ready,
		"failed", (json_int_t)failed,
		"before_kb", "rss", (json_int_t)before[0], "anon", (json_int_t)before[1],
		"pss", (json_int_t)before[2],
		"after_kb", "rss", (json_int_t)after[0], "anon", (json_int_t)after[1],
		"pss", (json_int_t)after[2],
		"bytes_per_connection", "rss", per[0], "anon", per[1], "pss", per[2],
		"server_processes", plist));
	if (opt.hold > 0) {
		say("  holding the connections for %g s\n", opt.hold);
		usleep((useconds_t)(opt.hold * 1e6));
	}
	/* Closing the control sockets tells the children to leave. */
	for (long k = 0; k < nproc; k++)
		close(ctl[k]);
	for (long k = 0; k < nproc; k++) {
		int status;
		int64_t until = mono_us() + 10 * 1000000LL;
		while (waitpid(kids[k], &status, WNOHANG) == 0) {
			if (mono_us() > until) {
				kill(kids[k], SIGKILL);
				waitpid(kids[k], &status, 0);
				break;
			}
			usleep(10000);
		}
	}
	free(kids);
	free(ctl);
	return failed == 0 && ready == opt.connections ? 0 : 1;
}

/* ---- abuse -------------------------------------------------------------------------- */

/* Hostile or broken clients, reconnecting as soon as the server drops them,
 * beside well-behaved control subscribers and a paced publisher: what the
 * server does to each kind, whether the control clients lose anything, and
 * how the server's memory moves. */
enum abuse_kind { ABUSE_IDLE, ABUSE_SLOWLORIS, ABUSE_OVERSIZED, ABUSE_FLOOD, ABUSE_SUBSCRIBE,
		  ABUSE_BADTOKEN };

static const char *const abuse_kinds[] = { "idle", "slowloris", "oversized", "flood",
					   "subscribe", "badtoken" };

struct attacker {
	ev_io io;               /* first: the watcher is the attacker */
	struct wsclient ws;     /* raw kinds use ws.fd only */
	bool open;              /* upgraded (WebSocket kinds) */
	bool dead;
	size_t sent;            /* slowloris: bytes of the request sent */
	long rooms;             /* subscribe: rooms asked for */
};

static struct {
	enum abuse_kind kind;
	struct attacker *v;
	long n;
	bool stopping;
	uint64_t connects, server_closed, refused, errors, connect_failed;
	uint64_t close_codes[5000];
	char *blob;             /* oversized: one message over the limit */
	size_t blob_len;
	ev_timer tick, end;
} ab;

static void attacker_start(struct attacker *a);

static void attacker_drop(struct attacker *a, bool by_server)
{
	ev_io_stop(bench_loop, &a->io);
	if (by_server) {
		ab.server_closed++;
		if (a->ws.http_status)
			ab.refused++;
		else if (a->ws.close_code > 0 && a->ws.close_code < 5000)
			ab.close_codes[a->ws.close_code]++;
	}
	wsclient_free(&a->ws);
	a->open = false;
	a->dead = true;
	if (!ab.stopping)
		attacker_start(a);
}

/* Keeps a WebSocket attacker's pipe full of what its kind sends. */
static void attacker_feed(struct attacker *a)
{
	if (!a->open || a->ws.out.len > 256 * 1024)
		return;
	char msg[160];
	for (int i = 0; i < 100; i++) {
		int n = ab.kind == ABUSE_FLOOD
			? snprintf(msg, sizeof(msg), "{\"type\":\"ping\",\"id\":%d}", i)
			: snprintf(msg, sizeof(msg), "{\"type\":\"subscribe\",\"room\":\"%.*s:storm-%ld\"}",
				   (int)strcspn(opt.room, ":"), opt.room, a->rooms++);
		wsclient_queue(&a->ws, WS_OP_TEXT, msg, (size_t)n);
	}
}

static void attacker_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct attacker *a = (struct attacker *)w;
	bool raw = ab.kind == ABUSE_IDLE || ab.kind == ABUSE_SLOWLORIS;
	if (revents & EV_READ) {
		if (raw) {
			char buf[4096];
			ssize_t n = read(a->ws.fd, buf, sizeof(buf));
			if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
				attacker_drop(a, true);
				return;
			}
		} else {
			struct wsclient_msg m;
			int r;
			wsclient_read(&a->ws);
			while ((r = wsclient_next(&a->ws, &m)) > 0) {
				if (starts_with(m.data, m.len, "{\"type\":\"welcome\"")) {
					a->open = true;
					if (ab.kind == ABUSE_OVERSIZED)
						wsclient_queue(&a->ws, WS_OP_TEXT, ab.blob, ab.blob_len);
				} else if (starts_with(m.data, m.len, "{\"type\":\"error\"")) {
					ab.errors++;
				}
			}
			if (r < 0) {
				attacker_drop(a, true);
				return;
			}
			if (ab.kind == ABUSE_FLOOD || ab.kind == ABUSE_SUBSCRIBE)
				attacker_feed(a);
		}
	}
	if (!raw) {
		int f = wsclient_flush(&a->ws);
		if (f < 0) {
			attacker_drop(a, true);
			return;
		}
		io_want(&a->io, f ? EV_READ : EV_READ | EV_WRITE);
	} else {
		io_want(&a->io, EV_READ);
	}
}

static void attacker_start(struct attacker *a)
{
	char path[128] = "/ws";
	if (ab.kind == ABUSE_BADTOKEN) {
		/* Well formed, wrongly signed: the server has to check it. */
		char junk[17];
		random_hex(junk, 8);
		snprintf(path, sizeof(path), "/ws?token=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.%s", junk);
	}
	a->dead = false;
	a->sent = 0;
	a->rooms = 0;
	if (wsclient_start(&a->ws, &ws_addr, NULL, path, ws_host) < 0) {
		ab.connect_failed++;
		a->ws.fd = -1;
		a->dead = true;       /* the tick tries again */
		return;
	}
	ab.connects++;
	if (ab.kind == ABUSE_IDLE || ab.kind == ABUSE_SLOWLORIS)
		buf_free(&a->ws.out);     /* no upgrade request: the kind writes */
	ev_io_init(&a->io, attacker_io_cb, a->ws.fd, ab.kind <= ABUSE_SLOWLORIS ? EV_READ
									     : EV_READ | EV_WRITE);
	ev_io_start(bench_loop, &a->io);
}

/* Every second: slowloris attackers send one more byte of a request that
 * never ends, and attackers that could not connect try again. */
static void abuse_tick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	static const char req[] = "GET /ws HTTP/1.1\r\nHost: bench\r\nX-Padding: ";
	for (long i = 0; i < ab.n; i++) {
		struct attacker *a = &ab.v[i];
		if (a->dead) {
			attacker_start(a);
		} else if (ab.kind == ABUSE_SLOWLORIS) {
			char c = a->sent < sizeof(req) - 1 ? req[a->sent] : 'a';
			if (write(a->ws.fd, &c, 1) == 1)
				a->sent++;
		}
	}
}

static bool abuse_over;

static void abuse_end_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	abuse_over = true;
	ev_break(loop, EVBREAK_ALL);
}

static bool abuse_done(void)
{
	return abuse_over;
}

static int run_abuse(void)
{
	long limit = raise_nofile();
	if (opt.connections + opt.subscribers + opt.publishers + BENCH_FD_RESERVE > limit) {
		fprintf(stderr, "herald-bench: %ld attackers need more than the %ld descriptors "
				"a process may open\n", opt.connections, limit);
		return 2;
	}
	ab.kind = ABUSE_IDLE;
	while (ab.kind < ARRAY_SIZE(abuse_kinds) && strcmp(abuse_kinds[ab.kind], opt.kind) != 0)
		ab.kind++;
	if (ab.kind == ARRAY_SIZE(abuse_kinds)) {
		fprintf(stderr, "herald-bench: --kind is idle, slowloris, oversized, flood, "
				"subscribe or badtoken\n");
		return 2;
	}
	if (!opt.pipeline)
		opt.pipeline = 1;
	long controls = opt.subscribers ? opt.subscribers : 10;
	double rate = opt.rate > 0 ? opt.rate : 100;
	static struct procmem procs[BENCH_MAX_PIDS];
	int np = find_pids(procs, BENCH_MAX_PIDS, opt.match);
	long before[3] = { 0 }, after[3] = { 0 };
	measure(procs, np, before);
	say("abuse: %ld %s attackers for %g s beside %ld subscribers of %s and %g publishes/s\n",
	    opt.connections, opt.kind, opt.duration, controls, opt.room, rate);

	subs_open(controls, 0, 2, true, -1, NULL);
	if (!phase_run("subscribing", subs_settled, subs_progress) || subs.dead) {
		fail_early("subscribing", subs.error);
		return 1;
	}
	ab.blob_len = 1u << 20;
	ab.blob = xcalloc(1, ab.blob_len);
	memset(ab.blob, 'x', ab.blob_len);
	ab.v = xcalloc((size_t)opt.connections, sizeof(*ab.v));
	ab.n = opt.connections;
	for (long i = 0; i < ab.n; i++)
		attacker_start(&ab.v[i]);
	ev_timer_init(&ab.tick, abuse_tick_cb, 1, 1);
	ev_timer_start(bench_loop, &ab.tick);
	ev_timer_init(&ab.end, abuse_end_cb, opt.duration, 0);
	ev_timer_start(bench_loop, &ab.end);
	opt.rate = rate;
	pub_open(opt.publishers, (long)(rate * opt.duration), opt.room, 1);
	pub_start();
	double saved = opt.timeout;
	opt.timeout = opt.duration + 60;
	phase_run("abusing", abuse_done, NULL);
	measure(procs, np, after);
	ab.stopping = true;
	ev_timer_stop(bench_loop, &ab.tick);
	for (long i = 0; i < ab.n; i++) {
		if (!ab.v[i].dead) {
			ev_io_stop(bench_loop, &ab.v[i].io);
			wsclient_free(&ab.v[i].ws);
		}
	}
	/* What was published during the attack still has to arrive. */
	opt.timeout = saved;
	bool ok = phase_run("delivering", fanout_done, fanout_progress);
	long expected = pub.acked * controls;
	long lost = expected - (long)(subs.received - subs.dups);
	say("  attackers: %llu connections, %llu closed by the server (%llu refused upgrades), "
	    "%llu protocol errors received, %llu connects failed\n",
	    (unsigned long long)ab.connects, (unsigned long long)ab.server_closed,
	    (unsigned long long)ab.refused, (unsigned long long)ab.errors,
	    (unsigned long long)ab.connect_failed);
	json_t *codes = json_object();
	for (int c = 0; c < 5000; c++) {
		if (ab.close_codes[c]) {
			char k[12];
			snprintf(k, sizeof(k), "%d", c);
			json_object_set_new(codes, k, json_integer((json_int_t)ab.close_codes[c]));
			say("    close code %d: %llu\n", c, (unsigned long long)ab.close_codes[c]);
		}
	}
	say("  control: published %ld (failed %ld), delivered %llu of %ld, lost %ld, gaps %llu\n",
	    pub.acked, pub.failed, (unsigned long long)subs.received, expected, lost,
	    (unsigned long long)subs.gaps);
	hist_print("control publish-to-delivery", &subs.lat);
	say("  server memory: VmRSS %ld -> %ld kB, RssAnon %ld -> %ld kB\n", before[0], after[0],
	    before[1], after[1]);
	print_result(json_pack("{s:s, s:s, s:I, s:f, s:{s:I, s:I, s:I, s:I, s:I, s:o}, "
			       "s:{s:I, s:I, s:I, s:I, s:I, s:I, s:o}, s:{s:I, s:I}, s:{s:I, s:I}}",
		"mode", "abuse", "kind", opt.kind, "attackers", (json_int_t)opt.connections,
		"duration", opt.duration,
		"attack", "connections", (json_int_t)ab.connects,
		"closed_by_server", (json_int_t)ab.server_closed, "refused", (json_int_t)ab.refused,
		"errors", (json_int_t)ab.errors, "connect_failed", (json_int_t)ab.connect_failed,
		"close_codes", codes,
		"control", "subscribers", (json_int_t)controls, "published", (json_int_t)pub.acked,
		"publish_errors", (json_int_t)pub.failed, "lost", (json_int_t)lost,
		"gaps", (json_int_t)subs.gaps, "dropped", (json_int_t)subs.dead,
		"latency_us", hist_json(&subs.lat),
		"rss_kb", "before", (json_int_t)before[0], "after", (json_int_t)after[0],
		"anon_kb", "before", (json_int_t)before[1], "after", (json_int_t)after[1]));
	bool clean = ok && lost == 0 && !pub.failed && !subs.gaps && !subs.dead;
	free(ab.v);
	free(ab.blob);
	pub_close();
	subs_close();
	return clean ? 0 : 1;
}

/* ---- webhooks ------------------------------------------------------------------------ */

/* One blocking request on its own connection to the admin listener, for the
 * few calls around a measurement. Returns the HTTP status with the body in
 * out, or -1 with the reason in out. */
static int api_call(const char *method, const char *path, const char *body, struct buf *out)
{
	struct buf req = { 0 }, in = { 0 };
	http_request(&req, method, path, body, body ? strlen(body) : 0, true);
	buf_reset(out);
	struct timeval tv = { .tv_sec = (time_t)opt.timeout };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), status = -1;
	const char *why = NULL;
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
	    connect(fd, (struct sockaddr *)&api_addr, sizeof(api_addr)) < 0 ||
	    send(fd, req.data, req.len, MSG_NOSIGNAL) != (ssize_t)req.len)
		why = strerror(errno);
	while (!why) {
		buf_reserve(&in, 4096);
		ssize_t n = recv(fd, in.data + in.len, in.cap - in.len, 0);
		if (n <= 0) {
			why = n == 0 ? "closed by the server" : strerror(errno);
			break;
		}
		in.len += (size_t)n;
		struct wsclient_response r;
		int h = wsclient_parse_response(in.data, in.len, &r);
		if (h == -1)
			why = "malformed response";
		if (h >= 0 && in.len - (size_t)h >= r.content_length) {
			status = r.status;
			buf_append(out, in.data + h, r.content_length);
			break;
		}
	}
	if (why)
		buf_appends(out, why);
	if (fd >= 0)
		close(fd);
	buf_free(&req);
	buf_free(&in);
	return status;
}

static void api_fail(const char *what, int status, const struct buf *out)
{
	fprintf(stderr, "herald-bench: %s: ", what);
	if (status >= 0)
		fprintf(stderr, "HTTP %d ", status);
	fprintf(stderr, "%.*s\n", (int)MIN(out->len, 300), out->data ? out->data : "");
}

/* The receiver: a minimal HTTP/1.1 server on a loopback port that answers
 * every request 200 at once on keep-alive connections, and counts the
 * deliveries by their webhook-id. */
struct rconn {
	ev_io io;               /* first: the watcher is the connection */
	int fd;
	bool continued;         /* "100 Continue" sent for the request being read */
	struct buf in, out;
	struct rconn *next;
};

static struct {
	int fd;
	int port;
	ev_io io;
	struct rconn *conns;
	long accepted;
	uint64_t received, dups, unnamed;
	struct map ids;         /* the webhook-ids seen */
	int64_t first, last;    /* mono µs of the first and last delivery */
	struct hist lat;        /* publish to delivery, from the payload's t */
	char error[300];
} rcv = { .fd = -1 };

static void rconn_close(struct rconn *c, const char *why)
{
	if (why)
		set_error(rcv.error, sizeof(rcv.error), "receiver: %s", why);
	ev_io_stop(bench_loop, &c->io);
	close(c->fd);
	c->fd = -1;
	buf_free(&c->in);
	buf_free(&c->out);
}

static void rcv_delivery(const char *id, size_t idlen, const char *body, size_t len)
{
	int64_t now = mono_us();
	rcv.received++;
	if (!rcv.first)
		rcv.first = now;
	rcv.last = now;
	if (!idlen)
		rcv.unnamed++;
	else if (map_get(&rcv.ids, id, idlen))
		rcv.dups++;
	else
		map_put(&rcv.ids, id, idlen, &rcv);
	const char *t = memmem(body, len, "\"t\":", 4);
	if (t) {
		int64_t sent = 0;
		for (t += 4; t < body + len && *t >= '0' && *t <= '9'; t++)
			sent = sent * 10 + (*t - '0');
		hist_add(&rcv.lat, wall_us() - sent);
	}
}

/* When line l[0..n) is the header name, points v at its value. */
static bool header_is(const char *l, size_t n, const char *name, const char **v, size_t *vl)
{
	size_t k = strlen(name);
	if (n <= k || l[k] != ':' || strncasecmp(l, name, k) != 0)
		return false;
	for (l += k + 1, n -= k + 1; n && (*l == ' ' || *l == '\t'); l++, n--)
		;
	while (n && (l[n - 1] == ' ' || l[n - 1] == '\t'))
		n--;
	*v = l;
	*vl = n;
	return true;
}

/* Answers the requests complete in c->in. Returns why the connection has
 * to go, or NULL. */
static const char *rconn_parse(struct rconn *c)
{
	size_t off = 0;
	const char *why = NULL;
	for (;;) {
		const char *p = c->in.data + off, *end = memmem(p, c->in.len - off, "\r\n\r\n", 4);
		if (!end)
			break;
		size_t head = (size_t)(end - p) + 4, clen = 0, idlen = 0, vl;
		const char *id = NULL, *v;
		bool expect = false;
		for (const char *l = p, *eol; l < end; l = eol + 2) {
			eol = memmem(l, (size_t)(end + 2 - l), "\r\n", 2);
			if (header_is(l, (size_t)(eol - l), "content-length", &v, &vl))
				for (clen = 0; vl && *v >= '0' && *v <= '9' && clen < (1u << 30); v++, vl--)
					clen = clen * 10 + (size_t)(*v - '0');
			else if (header_is(l, (size_t)(eol - l), "webhook-id", &v, &vl))
				id = v, idlen = vl;
			else if (header_is(l, (size_t)(eol - l), "expect", &v, &vl))
				expect = vl == 12 && strncasecmp(v, "100-continue", 12) == 0;
			else if (header_is(l, (size_t)(eol - l), "transfer-encoding", &v, &vl))
				why = "chunked requests are not supported";
		}
		if (why || clen > (1u << 20)) {
			why = why ? why : "request body over 1 MiB";
			break;
		}
		if (c->in.len - off - head < clen) {
			if (expect && !c->continued)
				buf_appends(&c->out, "HTTP/1.1 100 Continue\r\n\r\n");
			c->continued = true;
			break;
		}
		rcv_delivery(id, idlen, end + 4, clen);
		buf_appends(&c->out, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
		c->continued = false;
		off += head + clen;
	}
	buf_consume(&c->in, off);
	return why ? why : c->in.len > (2u << 20) ? "request head too large" : NULL;
}

static void rconn_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct rconn *c = (struct rconn *)w;
	if (revents & EV_READ) {
		buf_reserve(&c->in, BENCH_READ_CHUNK);
		ssize_t n = recv(c->fd, c->in.data + c->in.len, c->in.cap - c->in.len, 0);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
			rconn_close(c, n == 0 ? NULL : strerror(errno));   /* the courier may close */
			return;
		}
		c->in.len += n > 0 ? (size_t)n : 0;
		const char *why = rconn_parse(c);
		if (why) {
			rconn_close(c, why);
			phase_check();
			return;
		}
	}
	if (send_buf(c->fd, &c->out) < 0)
		rconn_close(c, strerror(errno));
	else
		io_want(&c->io, c->out.len ? EV_READ | EV_WRITE : EV_READ);
	phase_check();
}

static void rcv_accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	int fd, one = 1;
	while ((fd = accept4(rcv.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
		struct rconn *c = xcalloc(1, sizeof(*c));
		c->fd = fd;
		c->next = rcv.conns;
		rcv.conns = c;
		rcv.accepted++;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		ev_io_init(&c->io, rconn_io_cb, fd, EV_READ);
		ev_io_start(bench_loop, &c->io);
	}
	if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED)
		set_error(rcv.error, sizeof(rcv.error), "receiver: accept: %s", strerror(errno));
}

/* Listens on an ephemeral loopback port (rcv.port). */
static int rcv_open(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(a);
	rcv.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (rcv.fd < 0 || bind(rcv.fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    listen(rcv.fd, 1024) < 0 || getsockname(rcv.fd, (struct sockaddr *)&a, &alen) < 0) {
		fprintf(stderr, "herald-bench: receiver: %s\n", strerror(errno));
		return -1;
	}
	rcv.port = ntohs(a.sin_port);
	ev_io_init(&rcv.io, rcv_accept_cb, rcv.fd, EV_READ);
	ev_io_start(bench_loop, &rcv.io);
	return 0;
}

static void rcv_close(void)
{
	if (rcv.fd >= 0) {
		ev_io_stop(bench_loop, &rcv.io);
		close(rcv.fd);
	}
	while (rcv.conns) {
		struct rconn *c = rcv.conns;
		rcv.conns = c->next;
		if (c->fd >= 0)
			rconn_close(c, NULL);
		free(c);
	}
	map_free(&rcv.ids);
}

/* Registers an endpoint for the bench room(s) at url; its id into id. */
static int endpoint_add(const char *url, char *id, size_t idlen)
{
	char rooms[ROOM_MAX + 8];
	snprintf(rooms, sizeof(rooms), opt.rooms_count > 1 ? "%s-*" : "%s", opt.room);
	json_t *v = json_pack("{s:s, s:[s], s:[s]}", "url", url, "events", "*", "rooms", rooms);
	char *body = json_dumps(v, JSON_COMPACT);
	json_decref(v);
	struct buf out = { 0 };
	int status = api_call("POST", "/api/webhooks", body, &out);
	v = status == 201 ? json_loadb(out.data, out.len, 0, NULL) : NULL;
	const char *s = json_string_value(json_object_get(v, "id"));
	if (s)
		snprintf(id, idlen, "%s", s);
	else
		api_fail("registering a webhook", status, &out);
	json_decref(v);
	free(body);
	buf_free(&out);
	return s ? 0 : -1;
}

static void endpoint_remove(const char *id)
{
	char path[128];
	struct buf out = { 0 };
	snprintf(path, sizeof(path), "/api/webhooks/%s", id);
	int status = api_call("DELETE", path, NULL, &out);
	if (status != 200)
		api_fail(path, status, &out);
	buf_free(&out);
}

/* Deliveries waiting in the server's queue (/api/stats); -1 when unknown. */
static long webhooks_queued(void)
{
	struct buf out = { 0 };
	json_t *v = api_call("GET", "/api/stats", NULL, &out) == 200
		? json_loadb(out.data, out.len, 0, NULL) : NULL;
	json_t *q = json_object_get(json_object_get(v, "webhooks"), "queued");
	long n = json_is_integer(q) ? (long)json_integer_value(q) : -1;
	json_decref(v);
	buf_free(&out);
	return n;
}

/* The courier's memory: --pids, else every process titled "heraldd: courier". */
static json_t *courier_memory(void)
{
	static struct procmem procs[BENCH_MAX_PIDS];
	int np = find_pids(procs, BENCH_MAX_PIDS, "heraldd: courier");
	json_t *list = json_array();
	for (int i = 0; i < np; i++) {
		long rss = proc_kb(procs[i].pid, "status", "VmRSS:");
		long anon = proc_kb(procs[i].pid, "status", "RssAnon:");
		long hwm = proc_kb(procs[i].pid, "status", "VmHWM:");
		say("  courier pid %d: VmRSS %ld kB, RssAnon %ld kB, peak VmHWM %ld kB\n",
		    (int)procs[i].pid, rss, anon, hwm);
		json_array_append_new(list, json_pack("{s:i, s:I, s:I, s:I}", "pid", (int)procs[i].pid,
			"rss_kb", (json_int_t)rss, "anon_kb", (json_int_t)anon, "hwm_kb", (json_int_t)hwm));
	}
	if (np == 0)
		fprintf(stderr, "herald-bench: no courier process found (or use --pids)\n");
	else if (np > 1)
		fprintf(stderr, "herald-bench: %d courier processes: use --pids to choose\n", np);
	return list;
}

static long webhooks_expected(void)
{
	return pub.acked * opt.endpoints;
}

static bool webhooks_done(void)
{
	return pub_done() && (long)rcv.ids.count >= webhooks_expected();
}

static void webhooks_progress(void)
{
	fprintf(stderr, "\r\033[Kpublished %ld/%ld, webhooks %zu/%ld", pub.acked, pub.total,
		rcv.ids.count, pub.total * opt.endpoints);
}

static int run_webhooks(void)
{
	raise_nofile();
	if (!opt.pipeline)
		opt.pipeline = 1;
	char url[512];
	if (opt.url)
		snprintf(url, sizeof(url), "%s", opt.url);
	else if (rcv_open() == 0)
		snprintf(url, sizeof(url), "http://127.0.0.1:%d/", rcv.port);
	else
		return 1;
	say("webhooks: %ld messages to %s%s over %ld HTTP connections, %ld endpoints at %s\n",
	    opt.messages, opt.room, opt.rooms_count > 1 ? "-*" : "", opt.publishers,
	    opt.endpoints, url);
	char (*ids)[64] = xcalloc((size_t)opt.endpoints, sizeof(*ids));
	long made = 0;
	while (made < opt.endpoints && endpoint_add(url, ids[made], sizeof(ids[made])) == 0)
		made++;
	if (made < opt.endpoints) {
		while (made)
			endpoint_remove(ids[--made]);
		free(ids);
		rcv_close();
		return 1;
	}
	pub_open(opt.publishers, opt.messages, opt.room, opt.rooms_count);
	pub_start();
	bool ok = phase_run(opt.url ? "publishing" : "publishing and delivering",
			    opt.url ? pub_done : webhooks_done, webhooks_progress);
	if (opt.url)
		usleep((useconds_t)(opt.settle * 1e6));   /* the courier takes up the queue */
	long queued = webhooks_queued();
	long expected = webhooks_expected(), distinct = (long)rcv.ids.count;
	long missing = opt.url ? 0 : expected - distinct;
	double dps = rate_per_sec((double)rcv.received, rcv.first, rcv.last);
	double pps = rate_per_sec((double)pub.acked, pub.first_sent, pub.last_ack);
	double lag = span(pub.last_ack, rcv.last);
	say("  published %ld (failed %ld) at %.0f publishes/s acknowledged\n", pub.acked,
	    pub.failed, pps);
	if (!opt.url) {
		say("  received %llu webhooks in %.3f s: %.0f deliveries/s, the last %.3f s after "
		    "the last publish, over %ld connections\n", (unsigned long long)rcv.received,
		    span(rcv.first, rcv.last), dps, lag, rcv.accepted);
		say("  distinct webhook-ids %ld of %ld expected: missing %ld, duplicates %llu, "
		    "without webhook-id %llu\n", distinct, expected, missing,
		    (unsigned long long)rcv.dups, (unsigned long long)rcv.unnamed);
		hist_print("publish-to-webhook", &rcv.lat);
	}
	say("  queued in the server at the end: %ld\n", queued);
	json_t *courier = courier_memory();
	for (long i = 0; i < made; i++)
		endpoint_remove(ids[i]);     /* and their deliveries still queued */
	if (pub.error[0])
		fprintf(stderr, "herald-bench: %s\n", pub.error);
	if (rcv.error[0])
		fprintf(stderr, "herald-bench: %s\n", rcv.error);
	print_result(json_pack("{s:s, s:s, s:I, s:I, s:s, s:I, s:I, s:f, s:I, s:I, s:I, s:I, s:I, "
			       "s:I, s:I, s:f, s:f, s:I, s:o, s:o, s:b}",
		"mode", "webhooks", "room", opt.room, "messages", (json_int_t)opt.messages,
		"endpoints", (json_int_t)opt.endpoints, "url", url,
		"published", (json_int_t)pub.acked, "publish_errors", (json_int_t)pub.failed,
		"publishes_per_sec", pps, "expected", (json_int_t)expected,
		"received", (json_int_t)rcv.received, "distinct", (json_int_t)distinct,
		"missing", (json_int_t)missing, "duplicates", (json_int_t)rcv.dups,
		"without_id", (json_int_t)rcv.unnamed, "receiver_connections", (json_int_t)rcv.accepted,
		"deliveries_per_sec", dps, "lag_after_last_publish", lag, "queued", (json_int_t)queued,
		"latency_us", hist_json(&rcv.lat), "courier", courier,
		"timeout", !ok));
	bool clean = ok && !pub.failed && pub.acked == opt.messages && missing == 0 &&
		     !rcv.dups && !rcv.unnamed && !rcv.error[0];
	free(ids);
	pub_close();
	rcv_close();
	return clean ? 0 : 1;
}

/* ---- workflows ----------------------------------------------------------------------- */

/* A definition of two steps needing one approval each, by role: every
 * instance takes three transitions (created, approved, approved) and emits
 * six events to the workflows room (created; approved, updated; approved,
 * updated, completed). */
#define WF_STEPS 2
#define WF_ID_MAX 32
#define WF_BULK_MAX 1000
#define WF_PAGE 500

static const char *const wf_actor[WF_STEPS] = { "bench-a", "bench-b" };
static const char *const wf_role[WF_STEPS] = { "bench_first", "bench_second" };
static const char *const wf_status_after[WF_STEPS] = { "in_progress", "approved" };
static const int wf_events_per[WF_STEPS + 1] = { 1, 2, 3 };    /* per transition of each round */

static struct {
	char def[32];           /* the run's definition: bench_XXXX */
	char (*ids)[WF_ID_MAX]; /* the instances, by index */
	int round;              /* 0: creating; 1..WF_STEPS: approving that step */
	long done[WF_STEPS + 1];        /* committed transitions per round */
	long errors;            /* refused requests, or ids a bulk refused */
	struct buf body;        /* the bulk request being built */
	char error[300];
} wf;

static void hist_merge(struct hist *dst, const struct hist *src)
{
	for (size_t i = 0; i < HIST_BUCKETS; i++)
		dst->count[i] += src->count[i];
	dst->n += src->n;
	dst->max = MAX(dst->max, src->max);
}

static long wf_transitions(void)
{
	long n = 0;
	for (int r = 0; r <= WF_STEPS; r++)
		n += wf.done[r];
	return n;
}

static void wf_create_request(struct buf *out, long i)
{
	char body[160];
	int n = snprintf(body, sizeof(body),
			 "{\"definition\":\"%s\",\"created_by\":\"bench-wf\",\"data\":{\"i\":%ld}}",
			 wf.def, i);
	http_request(out, "POST", "/api/workflows", body, (size_t)n, false);
}

static void wf_approve_request(struct buf *out, long i)
{
	char path[WF_ID_MAX + 32], body[128];
	snprintf(path, sizeof(path), "/api/workflows/%s/approve", wf.ids[i]);
	int n = snprintf(body, sizeof(body), "{\"actor\":\"%s\",\"roles\":[\"%s\"]}",
			 wf_actor[wf.round - 1], wf_role[wf.round - 1]);
	http_request(out, "POST", path, body, (size_t)n, false);
}

/* The i-th bulk approves instances i*K up to (i+1)*K - 1. */
static void wf_bulk_request(struct buf *out, long i)
{
	long from = i * opt.bulk, to = MIN(from + opt.bulk, opt.workflows);
	buf_reset(&wf.body);
	buf_appends(&wf.body, "{\"action\":\"approve\",\"ids\":[");
	for (long k = from; k < to; k++)
		buf_printf(&wf.body, "%s\"%s\"", k > from ? "," : "", wf.ids[k]);
	buf_printf(&wf.body, "],\"actor\":\"%s\",\"roles\":[\"%s\"]}", wf_actor[wf.round - 1],
		   wf_role[wf.round - 1]);
	http_request(out, "POST", "/api/workflows/bulk", wf.body.data, wf.body.len, false);
}

static void wf_refused(const char *what, long i, int status, const char *body, size_t len)
{
	set_error(wf.error, sizeof(wf.error), "%s %s: HTTP %d %.*s", what,
		  wf.round ? wf.ids[i] : "", status, (int)MIN(len, 200), body);
}

/* 201 with the new instance: its id is kept for the approvals. */
static bool wf_create_response(long i, int status, const char *body, size_t len)
{
	const char *id = status == 201 ? memmem(body, len, "\"id\":\"", 6) : NULL;
	size_t n = 0;
	if (id) {
		id += 6;
		while (id + n < body + len && n < WF_ID_MAX - 1 &&
		       ((id[n] >= '0' && id[n] <= '9') || (id[n] >= 'a' && id[n] <= 'z') ||
			(id[n] >= 'A' && id[n] <= 'Z') || id[n] == '_' || id[n] == '-'))
			n++;
		if (id + n >= body + len || id[n] != '"')
			n = 0;
	}
	if (!n) {
		wf.errors++;
		wf_refused("create", i, status, body, len);
		return false;
	}
	memcpy(wf.ids[i], id, n);
	wf.ids[i][n] = '\0';
	wf.done[0]++;
	return true;
}

/* 200 with the state the approval must have led to. */
static bool wf_approve_response(long i, int status, const char *body, size_t len)
{
	char want[48];
	int n = snprintf(want, sizeof(want), "\"status\":\"%s\"", wf_status_after[wf.round - 1]);
	if (status != 200 || !memmem(body, len, want, (size_t)n)) {
		wf.errors++;
		wf_refused("approval of", i, status, body, len);
		return false;
	}
	wf.done[wf.round]++;
	return true;
}

/* 200 {bulk_id, total, succeeded, failed, results}: every id must succeed. */
static bool wf_bulk_response(long i, int status, const char *body, size_t len)
{
	long from = i * opt.bulk, count = MIN(from + opt.bulk, opt.workflows) - from;
	long ok = status == 200 ? (long)MIN(find_int(body, len, "\"succeeded\":"), count) : 0;
	wf.done[wf.round] += ok;
	if (ok == count)
		return true;
	wf.errors += count - ok;
	set_error(wf.error, sizeof(wf.error), "bulk approval of %s..%s: HTTP %d %.*s",
		  wf.ids[from], wf.ids[from + count - 1], status, (int)MIN(len, 200), body);
	return false;
}

static const char *wf_round_name(void)
{
	static const char *const names[WF_STEPS + 1] = { "created", "approved step 1",
							 "approved step 2" };
	return names[wf.round];
}

static void wf_progress(void)
{
	fprintf(stderr, "\r\033[K%s %ld/%ld", wf_round_name(), pub.acked, pub.total);
}

/* Creates the run's definition; 0 or -1. */
static int wf_define(void)
{
	char hex[17];
	random_hex(hex, 8);
	snprintf(wf.def, sizeof(wf.def), "bench_%s", hex);
	json_t *v = json_pack("{s:s, s:[{s:s, s:{s:[s]}, s:i}, {s:s, s:{s:[s]}, s:i}]}",
			      "name", wf.def, "steps",
			      "name", "first", "approvers", "roles", wf_role[0], "required", 1,
			      "name", "second", "approvers", "roles", wf_role[1], "required", 1);
	char *body = json_dumps(v, JSON_COMPACT);
	json_decref(v);
	struct buf out = { 0 };
	int status = api_call("POST", "/api/workflow-definitions", body, &out);
	if (status != 201)
		api_fail("creating the workflow definition", status, &out);
	free(body);
	buf_free(&out);
	return status == 201 ? 0 : -1;
}

/* The run's instances now approved, counted a page at a time; -1 on failure. */
static long wf_count_approved(void)
{
	char before[WF_ID_MAX] = "";
	long count = 0;
	for (long page = 0; page <= opt.workflows / WF_PAGE + 1; page++) {
		char path[256];
		snprintf(path, sizeof(path), "/api/workflows?definition=%s&status=approved&limit=%d%s%s",
			 wf.def, WF_PAGE, before[0] ? "&before=" : "", before);
		struct buf out = { 0 };
		int status = api_call("GET", path, NULL, &out);
		json_t *v = status == 200 ? json_loadb(out.data, out.len, 0, NULL) : NULL;
		json_t *list = json_object_get(v, "workflows");
		const char *next = json_string_value(json_object_get(v, "next_before"));
		bool listed = json_is_array(list), more = next != NULL;
		if (!listed)
			api_fail("listing the approved workflows", status, &out);
		else
			count += (long)json_array_size(list);
		if (more)
			snprintf(before, sizeof(before), "%s", next);
		json_decref(v);
		buf_free(&out);
		if (!listed)
			return -1;
		if (!more)
			return count;
	}
	return count;
}

static long wf_events_expected(void)
{
	long n = 0;
	for (int r = 0; r <= WF_STEPS; r++)
		n += wf.done[r] * wf_events_per[r];
	return n;
}

static bool wf_events_done(void)
{
	return subs.dead || (long)(subs.received - subs.dups) >= wf_events_expected();
}

static void wf_events_progress(void)
{
	fprintf(stderr, "\r\033[Kevents %llu/%ld", (unsigned long long)subs.received,
		wf_events_expected());
}

static int run_workflows(void)
{
	raise_nofile();
	long conns = opt.connections ? opt.connections : 4;
	if (!opt.pipeline)
		opt.pipeline = 1;
	if (opt.bulk > WF_BULK_MAX) {
		fprintf(stderr, "herald-bench: --bulk is at most %d\n", WF_BULK_MAX);
		return 2;
	}
	opt.rate = 0;           /* closed loop only */
	bool watch = opt.token != NULL;
	if (wf_define() < 0)
		return 1;
	say("workflows: %ld instances of %s (2 steps, 1 approval each) over %ld connections, "
	    "pipeline %ld, approvals %s\n", opt.workflows, wf.def, conns, opt.pipeline,
	    opt.bulk ? "in bulks" : "one request each");
	if (opt.bulk)
		say("  bulks of %ld ids\n", opt.bulk);
	if (watch) {
		/* One client with the token watches the workflows room. */
		opt.room = "workflows";
		subs_open(1, 0, 1, true, -1, NULL);
		if (!phase_run("subscribing", subs_settled, NULL) || subs.dead) {
			fprintf(stderr, "herald-bench: watching the workflows room: %s (the token "
					"needs role admin)\n", subs.error[0] ? subs.error : "failed");
			subs_close();
			return 1;
		}
	}
	wf.ids = xcalloc((size_t)opt.workflows, sizeof(*wf.ids));
	pub_open(conns, 0, "bench:workflows", 1);
	struct hist *lat_create = xcalloc(1, sizeof(*lat_create));
	struct hist *lat_approve = xcalloc(1, sizeof(*lat_approve));
	int64_t first = 0, last = 0, approve_from = 0;
	double round_secs[WF_STEPS + 1] = { 0 };
	long requests_failed = 0;
	bool ok = true;
	for (wf.round = 0; ok && wf.round <= WF_STEPS; wf.round++) {
		long n = wf.round && opt.bulk ? (opt.workflows + opt.bulk - 1) / opt.bulk
					      : opt.workflows;
		pub_rearm(n);
		pub.request = !wf.round ? wf_create_request
			      : opt.bulk ? wf_bulk_request : wf_approve_request;
		pub.response = !wf.round ? wf_create_response
			       : opt.bulk ? wf_bulk_response : wf_approve_response;
		pub_start();
		ok = phase_run(wf_round_name(), pub_done, wf_progress);
		hist_merge(wf.round ? lat_approve : lat_create, &pub.lat);
		requests_failed += pub.failed;
		round_secs[wf.round] = span(pub.first_sent, pub.last_ack);
		if (!first)
			first = pub.first_sent;
		if (wf.round == 1)
			approve_from = pub.first_sent;
		last = MAX(last, pub.last_ack);
		say("  %-16s %6ld in %.3f s: %.0f/s\n", wf_round_name(), wf.done[wf.round],
		    round_secs[wf.round], rate_per_sec((double)wf.done[wf.round], pub.first_sent,
						      pub.last_ack));
		ok = ok && pub.dead < pub.nconns;
	}
	wf.round = WF_STEPS;
	long transitions = wf_transitions();
	long approvals = transitions - wf.done[0];
	double tps = rate_per_sec((double)transitions, first, last);
	say("  %ld transitions committed in %.3f s: %.0f transitions/s; errors %ld, "
	    "failed requests %ld\n", transitions, span(first, last), tps, wf.errors,
	    requests_failed);
	hist_print("create request", lat_create);
	hist_print(opt.bulk ? "bulk request" : "approve request", lat_approve);

	long expected = 0, lost = 0;
	double lag = 0;
	if (watch) {
		expected = wf_events_expected();
		if (ok && !phase_run("delivering events", wf_events_done, wf_events_progress))
			ok = false;
		lost = MAX(0, expected - (long)(subs.received - subs.dups));
		lag = span(last, subs.last_event);
		say("  events in workflows: %llu of %ld (lost %ld, gaps %llu, duplicates %llu), "
		    "the last %.3f s after the last answer\n", (unsigned long long)subs.received,
		    expected, lost, (unsigned long long)subs.gaps, (unsigned long long)subs.dups, lag);
	}
	long approved = wf_count_approved();
	say("  approved at the end: %ld of %ld\n", approved, opt.workflows);
	if (wf.error[0])
		fprintf(stderr, "herald-bench: %s\n", wf.error);
	if (pub.error[0])
		fprintf(stderr, "herald-bench: %s\n", pub.error);
	if (subs.error[0])
		fprintf(stderr, "herald-bench: %s\n", subs.error);

	json_t *res = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:f, "
				"s:f, s:f, s:f, s:{s:o, s:o}, s:I}",
		"mode", "workflows", "definition", wf.def, "workflows", (json_int_t)opt.workflows,
		"connections", (json_int_t)conns, "pipeline", (json_int_t)opt.pipeline,
		"bulk", (json_int_t)opt.bulk, "created", (json_int_t)wf.done[0],
		"approvals", (json_int_t)approvals, "transitions", (json_int_t)transitions,
		"errors", (json_int_t)wf.errors, "failed_requests", (json_int_t)requests_failed,
		"seconds", span(first, last), "transitions_per_sec", tps,
		"creates_per_sec", round_secs[0] > 0 ? (double)wf.done[0] / round_secs[0] : 0,
		"approvals_per_sec", rate_per_sec((double)approvals, approve_from, last),
		"approvals_seconds", span(approve_from, last),
		"latency_us", "create", hist_json(lat_create),
		opt.bulk ? "bulk" : "approve", hist_json(lat_approve),
		"approved_at_end", (json_int_t)approved);
	if (watch)
		json_object_set_new(res, "events", json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:f}",
			"room", "workflows", "expected", (json_int_t)expected,
			"received", (json_int_t)subs.received, "lost", (json_int_t)lost,
			"gaps", (json_int_t)subs.gaps, "duplicates", (json_int_t)subs.dups,
			"lag_after_last_answer", lag));
	json_object_set_new(res, "timeout", json_boolean(!ok));
	print_result(res);
	bool clean = ok && !wf.errors && !requests_failed && wf.done[0] == opt.workflows &&
		     approvals == WF_STEPS * opt.workflows && approved == opt.workflows &&
		     (!watch || (lost == 0 && !subs.dups && !subs.dead));
	free(lat_create);
	free(lat_approve);
	free(wf.ids);
	buf_free(&wf.body);
	pub_close();
	if (watch)
		subs_close();
	return clean ? 0 : 1;
}

/* ---- main --------------------------------------------------------------------------- */

enum {
	OPT_SUBSCRIBERS = 256, OPT_CONNECTIONS, OPT_MESSAGES, OPT_RATE, OPT_PUBLISHERS,
	OPT_PIPELINE, OPT_ROOM, OPT_ROOMS_COUNT, OPT_PROCESSES, OPT_HOLD, OPT_SETTLE, OPT_PIDS,
	OPT_MATCH, OPT_WS_URL, OPT_API_URL, OPT_API_KEY, OPT_TOKEN, OPT_TIMEOUT, OPT_PER_SOURCE,
	OPT_CONCURRENCY, OPT_QUIET, OPT_KIND, OPT_DURATION, OPT_ENDPOINTS, OPT_URL, OPT_WORKFLOWS,
	OPT_BULK, OPT_PROTOCOL,
};

static const struct option long_opts[] = {
	{ "subscribers", required_argument, NULL, OPT_SUBSCRIBERS },
	{ "connections", required_argument, NULL, OPT_CONNECTIONS },
	{ "messages", required_argument, NULL, OPT_MESSAGES },
	{ "rate", required_argument, NULL, OPT_RATE },
	{ "publishers", required_argument, NULL, OPT_PUBLISHERS },
	{ "pipeline", required_argument, NULL, OPT_PIPELINE },
	{ "room", required_argument, NULL, OPT_ROOM },
	{ "rooms-count", required_argument, NULL, OPT_ROOMS_COUNT },
	{ "processes", required_argument, NULL, OPT_PROCESSES },
	{ "hold", required_argument, NULL, OPT_HOLD },
	{ "settle", required_argument, NULL, OPT_SETTLE },
	{ "pids", required_argument, NULL, OPT_PIDS },
	{ "pidfile-match", required_argument, NULL, OPT_MATCH },
	{ "match", required_argument, NULL, OPT_MATCH },
	{ "ws-url", required_argument, NULL, OPT_WS_URL },
	{ "api-url", required_argument, NULL, OPT_API_URL },
	{ "api-key", required_argument, NULL, OPT_API_KEY },
	{ "token", required_argument, NULL, OPT_TOKEN },
	{ "timeout", required_argument, NULL, OPT_TIMEOUT },
	{ "per-source", required_argument, NULL, OPT_PER_SOURCE },
	{ "concurrency", required_argument, NULL, OPT_CONCURRENCY },
	{ "quiet", no_argument, NULL, OPT_QUIET },
	{ "kind", required_argument, NULL, OPT_KIND },
	{ "duration", required_argument, NULL, OPT_DURATION },
	{ "endpoints", required_argument, NULL, OPT_ENDPOINTS },
	{ "url", required_argument, NULL, OPT_URL },
	{ "workflows", required_argument, NULL, OPT_WORKFLOWS },
	{ "bulk", required_argument, NULL, OPT_BULK },
	{ "protocol", required_argument, NULL, OPT_PROTOCOL },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

/* Takes listen, admin_listen and api_key from a configuration file. */
static int load_config(const char *path, char *ws, char *api, size_t len)
{
	static struct config cfg;
	char err[512];
	if (config_load(&cfg, path, err, sizeof(err)) < 0) {
		fprintf(stderr, "herald-bench: %s\n", err);
		return -1;
	}
	snprintf(ws, len, "%s", cfg.listen);
	snprintf(api, len, "%s", cfg.admin_listen);
	if (!opt.api_key && cfg.api_key)
		opt.api_key = xstrdup(cfg.api_key);
	if (cfg.socketio_path)
		snprintf(opt.sio_path, sizeof(opt.sio_path), "%s", cfg.socketio_path);
	config_free(&cfg);
	return 0;
}

static bool fanout_ok(void) { return opt.subscribers && opt.messages; }
static bool conns_ok(void) { return opt.connections; }
static bool messages_ok(void) { return opt.messages; }
static bool abuse_ok(void) { return opt.connections && opt.kind && opt.duration > 0; }
static bool workflows_ok(void) { return opt.workflows; }

static const struct mode {
	const char *name;
	int (*run)(void);
	bool (*ok)(void);       /* the mode's required options are there */
	const char *needs;
	bool needs_api;
} modes[] = {
	{ "fanout", run_fanout, fanout_ok, "--subscribers and --messages", true },
	{ "conns", run_conns, conns_ok, "--connections", false },
	{ "publish", run_publish, messages_ok, "--messages", true },
	{ "replay", run_replay, messages_ok, "--messages", true },
	{ "abuse", run_abuse, abuse_ok, "--kind, --connections and --duration", true },
	{ "webhooks", run_webhooks, messages_ok, "--messages", true },
	{ "workflows", run_workflows, workflows_ok, "--workflows", true },
};

int main(int argc, char **argv)
{
	if (argc < 2 || argv[1][0] == '-') {
		bool help = argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0);
		usage(help ? stdout : stderr);
		return help ? 0 : 2;
	}
	opt.mode = argv[1];
	const struct mode *m = NULL;
	for (size_t i = 0; i < ARRAY_SIZE(modes); i++)
		if (strcmp(modes[i].name, opt.mode) == 0)
			m = &modes[i];
	if (!m) {
		fprintf(stderr, "herald-bench: unknown mode '%s'\n", opt.mode);
		usage(stderr);
		return 2;
	}
	const char *cfg_path = NULL;
	char cfg_ws[64] = "", cfg_api[64] = "", room[128];
	int c;
	optind = 2;
	while ((c = getopt_long(argc, argv, "c:h", long_opts, NULL)) != -1) {
		switch (c) {
		case 'c': cfg_path = optarg; break;
		case OPT_SUBSCRIBERS: opt.subscribers = opt_long("--subscribers", optarg, 1); break;
		case OPT_CONNECTIONS: opt.connections = opt_long("--connections", optarg, 1); break;
		case OPT_MESSAGES: opt.messages = opt_long("--messages", optarg, 1); break;
		case OPT_RATE: opt.rate = opt_double("--rate", optarg); break;
		case OPT_PUBLISHERS: opt.publishers = opt_long("--publishers", optarg, 1); break;
		case OPT_PIPELINE: opt.pipeline = opt_long("--pipeline", optarg, 1); break;
		case OPT_ROOM: opt.room = optarg; break;
		case OPT_ROOMS_COUNT: opt.rooms_count = opt_long("--rooms-count", optarg, 1); break;
		case OPT_PROCESSES: opt.processes = opt_long("--processes", optarg, 1); break;
		case OPT_HOLD: opt.hold = opt_double("--hold", optarg); break;
		case OPT_SETTLE: opt.settle = opt_double("--settle", optarg); break;
		case OPT_PIDS: opt.pids = optarg; break;
		case OPT_MATCH: opt.match = optarg; break;
		case OPT_WS_URL: opt.ws_url = optarg; break;
		case OPT_API_URL: opt.api_url = optarg; break;
		case OPT_API_KEY: opt.api_key = optarg; break;
		case OPT_TOKEN: opt.token = optarg; break;
		case OPT_TIMEOUT: opt.timeout = opt_double("--timeout", optarg); break;
		case OPT_PER_SOURCE: opt.per_source = opt_long("--per-source", optarg, 1); break;
		case OPT_CONCURRENCY: opt.concurrency = opt_long("--concurrency", optarg, 1); break;
		case OPT_QUIET: opt.quiet = true; break;
		case OPT_KIND: opt.kind = optarg; break;
		case OPT_DURATION: opt.duration = opt_double("--duration", optarg); break;
		case OPT_ENDPOINTS: opt.endpoints = opt_long("--endpoints", optarg, 1); break;
		case OPT_URL: opt.url = optarg; break;
		case OPT_WORKFLOWS: opt.workflows = opt_long("--workflows", optarg, 1); break;
		case OPT_BULK: opt.bulk = opt_long("--bulk", optarg, 1); break;
		case OPT_PROTOCOL:
			if (strcmp(optarg, "socketio") == 0) {
				opt.socketio = true;
			} else if (strcmp(optarg, "native") != 0) {
				fprintf(stderr, "herald-bench: --protocol is native or socketio\n");
				return 2;
			}
			break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "herald-bench: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	if (sodium_init() < 0) {
		fprintf(stderr, "herald-bench: libsodium failed to initialise\n");
		return 1;
	}
	if (cfg_path && load_config(cfg_path, cfg_ws, cfg_api, sizeof(cfg_ws)) < 0)
		return 1;
	if (!opt.api_key)
		opt.api_key = getenv("HERALD_API_KEY");
	const char *ws = opt.ws_url ? opt.ws_url : cfg_ws[0] ? cfg_ws : "127.0.0.1:8080";
	const char *api = opt.api_url ? opt.api_url : cfg_api[0] ? cfg_api : "127.0.0.1:8081";
	if (parse_url(ws, &ws_addr, ws_host, sizeof(ws_host)) < 0 ||
	    parse_url(api, &api_addr, api_host, sizeof(api_host)) < 0) {
		fprintf(stderr, "herald-bench: addresses are IPv4 HOST:PORT\n");
		return 2;
	}
	if (opt.pipeline > BENCH_PIPELINE_MAX) {
		fprintf(stderr, "herald-bench: --pipeline is at most %d\n", BENCH_PIPELINE_MAX);
		return 2;
	}
	if (!opt.room) {
		if (strcmp(opt.mode, "replay") == 0 || strcmp(opt.mode, "webhooks") == 0) {
			/* A fresh room: nothing older to prune or to replay, and
			 * no endpoint of an earlier run matches it. */
			char hex[17];
			random_hex(hex, 8);
			snprintf(room, sizeof(room), "bench:%s-%s", opt.mode, hex);
		} else {
			snprintf(room, sizeof(room), "bench:%s", opt.mode);
		}
		opt.room = room;
	}
	/* Rooms go into JSON unescaped: only valid names (and room-K) pass. */
	if (!acl_room_valid(opt.room, strlen(opt.room)) || strlen(opt.room) > ROOM_MAX - 8) {
		fprintf(stderr, "herald-bench: '%s' is not a room name (1..%d of [A-Za-z0-9_.:@-])\n",
			opt.room, ROOM_MAX - 8);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	if (m->needs_api && (!opt.api_key || !*opt.api_key)) {
		fprintf(stderr, "herald-bench: %s needs --api-key (or HERALD_API_KEY, or -c FILE)\n",
			m->name);
		return 2;
	}
	if (!m->ok()) {
		fprintf(stderr, "herald-bench: %s needs %s\n", m->name, m->needs);
		return 2;
	}
	if (opt.socketio && m->run != run_fanout && m->run != run_conns) {
		fprintf(stderr, "herald-bench: --protocol socketio applies to fanout and conns\n");
		return 2;
	}
	/* conns creates a loop in each child it forks instead. */
	bench_loop = m->run != run_conns ? ev_default_loop(EVFLAG_AUTO) : NULL;
	return m->run();
}
