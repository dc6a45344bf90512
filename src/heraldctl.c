/* heraldctl.c -- the command-line client: writes configs, mints tokens, calls
 * the HTTP API, and speaks the client protocol (tail, connect). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <curl/curl.h>
#include <jansson.h>
#include <sodium.h>

#include "buf.h"
#include "config.h"
#include "http.h"
#include "jwt.h"
#include "util.h"
#include "wsclient.h"

#define CTL_HTTP_TIMEOUT_MS 30000
#define CTL_WS_TIMEOUT_MS 10000
#define CTL_DRAIN_MS 1000        /* connect: how long to wait for replies at EOF */

static struct {
	struct config cfg;
	char api_url[128];       /* "http://127.0.0.1:8081" */
	const char *api_key;
	char ws_addr[128];       /* "127.0.0.1:8080" */
} ctl;

static volatile sig_atomic_t ctl_stop;

static void usage(FILE *fp);

/* ---- arguments --------------------------------------------------------------- */

struct opt {
	const char *name;        /* "--roles" */
	const char **val;        /* receives the value */
};

static void die_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die_usage(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "heraldctl: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	usage(stderr);
	exit(2);
}

/* Splits argv into positional arguments (into pos, at most maxpos) and the
 * options in opts ("--name VALUE" or "--name=VALUE"). Exits with the usage
 * on anything else. Returns the number of positional arguments. */
static int args_split(int argc, char **argv, const struct opt *opts, const char **pos, int maxpos)
{
	int npos = 0;
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
			if (npos == maxpos)
				die_usage("unexpected argument '%s'", a);
			pos[npos++] = a;
			continue;
		}
		const char *eq = strchr(a, '=');
		size_t nlen = eq ? (size_t)(eq - a) : strlen(a);
		const struct opt *o = opts;
		while (o && o->name && (strlen(o->name) != nlen || strncmp(o->name, a, nlen) != 0))
			o++;
		if (!o || !o->name)
			die_usage("unknown option '%s'", a);
		if (eq)
			*o->val = eq + 1;
		else if (i + 1 < argc)
			*o->val = argv[++i];
		else
			die_usage("option %s needs a value", a);
	}
	return npos;
}

/* A non-negative integer argument; exits with the usage when it is not. */
static long arg_long(const char *name, const char *s)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < 0)
		die_usage("%s needs a non-negative integer", name);
	return v;
}

/* Parses a JSON argument (any value); exits on bad JSON. */
static json_t *arg_json(const char *s)
{
	json_error_t e;
	json_t *v = json_loads(s, JSON_DECODE_ANY, &e);
	if (!v) {
		fprintf(stderr, "heraldctl: invalid JSON '%s': %s\n", s, e.text);
		exit(2);
	}
	return v;
}

/* A comma-separated list as a JSON array of trimmed, non-empty strings. */
static json_t *arg_list(const char *s)
{
	json_t *arr = json_array();
	while (*s) {
		const char *end = strchr(s, ',');
		size_t n = end ? (size_t)(end - s) : strlen(s);
		const char *p = s;
		while (n && *p == ' ')
			p++, n--;
		while (n && p[n - 1] == ' ')
			n--;
		if (n)
			json_array_append_new(arr, json_stringn(p, n));
		s = end ? end + 1 : s + strlen(s);
	}
	return arr;
}

/* "0.0.0.0:8080" (a listen address) as an address to connect to. */
static void connect_addr(char *out, size_t outlen, const char *listen)
{
	const char *colon = strrchr(listen, ':');
	if (colon && (strncmp(listen, "0.0.0.0:", 8) == 0 || strncmp(listen, "*:", 2) == 0))
		snprintf(out, outlen, "127.0.0.1%s", colon);
	else
		snprintf(out, outlen, "%s", listen);
}

/* ---- HTTP API ---------------------------------------------------------------- */

static size_t curl_write(char *p, size_t size, size_t n, void *arg)
{
	buf_append(arg, p, size * n);
	return size * n;
}

/* Calls the API: method on path (escaped already, from "/api/..."), with
 * body (may be NULL). Returns the HTTP status with the response in out (the
 * caller frees it), or -1 after printing why the call failed. */
static int api_request(const char *method, const char *path, json_t *body, struct buf *out)
{
	if (!ctl.api_key || !*ctl.api_key) {
		fprintf(stderr, "heraldctl: no API key: set api_key in the configuration or use --key\n");
		return -1;
	}
	CURL *h = curl_easy_init();
	if (!h) {
		fprintf(stderr, "heraldctl: cannot initialise libcurl\n");
		return -1;
	}
	struct buf url = { 0 }, auth = { 0 };
	buf_printf(&url, "%s%s", ctl.api_url, path);
	buf_printf(&auth, "Authorization: Bearer %s", ctl.api_key);
	struct curl_slist *hdrs = curl_slist_append(NULL, auth.data);
	char *text = NULL;
	if (body) {
		text = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
		hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, text);
	}
	curl_easy_setopt(h, CURLOPT_URL, url.data);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, curl_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, out);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)CTL_HTTP_TIMEOUT_MS);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	CURLcode rc = curl_easy_perform(h);
	long status = -1;
	if (rc == CURLE_OK)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	else
		fprintf(stderr, "heraldctl: %s: %s\n", url.data, curl_easy_strerror(rc));
	buf_append(out, "", 1);      /* NUL-terminate; not counted */
	out->len--;
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(h);
	free(text);
	buf_free(&url);
	buf_free(&auth);
	return (int)status;
}

/* Prints a JSON text indented, or as it is when it is not JSON. */
static void print_json(FILE *fp, const char *s, size_t n)
{
	json_t *v = json_loadb(s, n, JSON_DECODE_ANY, NULL);
	if (!v) {
		fprintf(fp, "%.*s\n", (int)n, s);
		return;
	}
	json_dumpf(v, fp, JSON_INDENT(2) | JSON_ENCODE_ANY);
	fputc('\n', fp);
	json_decref(v);
}

/* Calls the API and prints the answer: on stdout when it succeeded (exit
 * status 0), then what more prints from it (when given); on stderr when not
 * (1). Takes body's reference. */
static int api_show(const char *method, const char *path, json_t *body, void (*more)(json_t *))
{
	struct buf out = { 0 };
	int status = api_request(method, path, body, &out);
	bool ok = status >= 200 && status < 300;
	json_decref(body);
	if (status > 0)
		print_json(ok ? stdout : stderr, out.data, out.len);
	json_t *v = ok && more ? json_loadb(out.data, out.len, 0, NULL) : NULL;
	if (v)
		more(v);
	json_decref(v);
	buf_free(&out);
	return ok ? 0 : 1;
}

static int api_print(const char *method, const char *path, json_t *body)
{
	return api_show(method, path, body, NULL);
}

/* ---- verbs: configuration and tokens --------------------------------------------- */

#define INIT_TEMPLATE \
	"# herald.conf -- written by heraldctl init. Every key is described in the\n" \
	"# sample configuration (" SYSCONFDIR "/herald/herald.conf) and in heraldd(8).\n" \
	"\n" \
	"# Client listener (WebSocket /ws, /health).\n" \
	"listen = 0.0.0.0:8080\n" \
	"# Admin listener (/api, /metrics, dashboard); keep it private.\n" \
	"admin_listen = 127.0.0.1:8081\n" \
	"workers = auto\n" \
	"database = ./var/herald.db\n" \
	"durability = normal\n" \
	"\n" \
	"# Secrets: keep this file private.\n" \
	"# Bearer key for the HTTP API.\n" \
	"api_key = %s\n" \
	"# HS256 secret for client JWTs (heraldctl token signs with it).\n" \
	"jwt_secret = %s\n" \
	"\n" \
	"allow_anonymous = yes\n" \
	"allowed_origins = *\n" \
	"log_level = info\n" \
	"log_file =\n" \
	"\n" \
	"# Rooms are namespace:id; a namespace must be declared to be used.\n" \
	"# [namespace race]\n" \
	"# subscribe = public\n" \
	"# publish = api\n"

static int cmd_init(int argc, char **argv)
{
	const char *pos[1];
	int n = args_split(argc, argv, NULL, pos, 1);
	char key[65], secret[65];
	random_hex(key, 32);
	random_hex(secret, 32);
	struct buf b = { 0 };
	buf_printf(&b, INIT_TEMPLATE, key, secret);
	int rc = 0;
	if (n == 0) {
		fwrite(b.data, 1, b.len, stdout);
	} else {
		/* Never overwrite: the file holds secrets somebody may rely on. */
		int fd = open(pos[0], O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0 || write(fd, b.data, b.len) != (ssize_t)b.len) {
			fprintf(stderr, "heraldctl: %s: %s\n", pos[0], strerror(errno));
			rc = 1;
		} else {
			fprintf(stderr, "heraldctl: wrote %s\n", pos[0]);
		}
		if (fd >= 0)
			close(fd);
	}
	buf_free(&b);
	return rc;
}

static int cmd_token(int argc, char **argv)
{
	const char *pos[1], *roles = NULL, *rooms = NULL, *ttl_arg = "3600";
	const struct opt opts[] = {
		{ "--roles", &roles }, { "--rooms", &rooms },
		{ "--ttl", &ttl_arg }, { NULL, NULL },
	};
	if (args_split(argc, argv, opts, pos, 1) != 1)
		die_usage("%s", "token needs a subject (user id)");
	long ttl = arg_long("--ttl", ttl_arg);
	const char *secret = ctl.cfg.jwt_secret;
	if (!secret || !*secret) {
		fprintf(stderr, "heraldctl: no jwt_secret in the configuration (or HERALD_JWT_SECRET)\n");
		return 1;
	}
	json_int_t now = (json_int_t)time(NULL);
	json_t *claims = json_pack("{s:s, s:I}", "sub", pos[0], "iat", now);
	if (ttl > 0)
		json_object_set_new(claims, "exp", json_integer(now + ttl));
	if (roles)
		json_object_set_new(claims, "roles", arg_list(roles));
	if (rooms)
		json_object_set_new(claims, "rooms", arg_list(rooms));
	if (ctl.cfg.jwt_issuer)
		json_object_set_new(claims, "iss", json_string(ctl.cfg.jwt_issuer));
	if (ctl.cfg.jwt_audience)
		json_object_set_new(claims, "aud", json_string(ctl.cfg.jwt_audience));
	char *text = json_dumps(claims, JSON_COMPACT);
	char *token = jwt_sign_hs256(text, (const uint8_t *)secret, strlen(secret));
	printf("%s\n", token);
	free(token);
	free(text);
	json_decref(claims);
	return 0;
}

/* ---- verbs: the HTTP API ----------------------------------------------------- */

static int cmd_publish(int argc, char **argv)
{
	const char *pos[3], *key = NULL;
	const struct opt opts[] = { { "--key", &key }, { NULL, NULL } };
	int n = args_split(argc, argv, opts, pos, 3);
	if (n < 2)
		die_usage("%s", "publish needs ROOM and EVENT");
	json_t *body = json_pack("{s:s, s:s}", "room", pos[0], "event", pos[1]);
	if (n == 3)
		json_object_set_new(body, "data", arg_json(pos[2]));
	if (key)
		json_object_set_new(body, "idempotency_key", json_string(key));
	return api_print("POST", "/api/publish", body);
}

static int cmd_broadcast(int argc, char **argv)
{
	const char *pos[2];
	int n = args_split(argc, argv, NULL, pos, 2);
	if (n < 1)
		die_usage("%s", "broadcast needs EVENT");
	json_t *body = json_pack("{s:s}", "event", pos[0]);
	if (n == 2)
		json_object_set_new(body, "data", arg_json(pos[1]));
	return api_print("POST", "/api/broadcast", body);
}

static int cmd_notify(int argc, char **argv)
{
	const char *pos[2], *title = NULL, *message = NULL, *data = NULL, *url = NULL;
	const struct opt opts[] = {
		{ "--title", &title }, { "--message", &message },
		{ "--data", &data }, { "--action-url", &url }, { NULL, NULL },
	};
	if (args_split(argc, argv, opts, pos, 2) != 2)
		die_usage("%s", "notify needs USER and TYPE");
	json_t *body = json_pack("{s:s, s:s}", "user", pos[0], "type", pos[1]);
	if (title)
		json_object_set_new(body, "title", json_string(title));
	if (message)
		json_object_set_new(body, "message", json_string(message));
	if (data)
		json_object_set_new(body, "data", arg_json(data));
	if (url)
		json_object_set_new(body, "action_url", json_string(url));
	return api_print("POST", "/api/notifications", body);
}

/* GET prefix + escaped segment + suffix, with ?qkey=qval (escaped) when
 * qval is given; suffix may carry a query of its own. */
static int api_get(const char *prefix, const char *segment, const char *suffix,
		   const char *qkey, const char *qval)
{
	struct buf path = { 0 };
	buf_appends(&path, prefix);
	if (segment)
		http_url_encode(&path, segment);
	if (suffix)
		buf_appends(&path, suffix);
	if (qval) {
		buf_printf(&path, "%c%s=", suffix && strchr(suffix, '?') ? '&' : '?', qkey);
		http_url_encode(&path, qval);
	}
	buf_append(&path, "", 1);
	int rc = api_print("GET", path.data, NULL);
	buf_free(&path);
	return rc;
}

static const char *node_str(json_t *node, const char *key)
{
	const char *s = json_string_value(json_object_get(node, key));
	return s ? s : "-";
}

/* In a cluster, its nodes as a table after the figures. */
static void print_nodes(json_t *stats)
{
	json_t *cluster = json_object_get(stats, "cluster"), *n;
	size_t i;
	if (!cluster)
		return;
	printf("\n%-24s %-8s %11s %7s %7s %10s %-5s %7s  %s\n", "NODE", "ROLE", "CONNECTIONS",
	       "ROOMS", "USERS", "DELIVERY/S", "LINK", "LAG", "API");
	json_array_foreach(json_object_get(cluster, "nodes"), i, n)
		printf("%-24s %-8s %11.0f %7.0f %7.0f %10.0f %-5s %7.0f  %s\n",
		       node_str(n, "name"), node_str(n, "role"),
		       json_number_value(json_object_get(n, "connections")),
		       json_number_value(json_object_get(n, "rooms")),
		       json_number_value(json_object_get(n, "users")),
		       json_number_value(json_object_get(n, "deliveries_per_sec")),
		       node_str(n, "link"), json_number_value(json_object_get(n, "lag")),
		       node_str(n, "api"));
	printf("total connections %lld, unique users %lld\n",
	       (long long)json_integer_value(json_object_get(cluster, "totalConnections")),
	       (long long)json_integer_value(json_object_get(cluster, "uniqueUsers")));
}

static int cmd_stats(int argc, char **argv)
{
	args_split(argc, argv, NULL, NULL, 0);
	return api_show("GET", "/api/stats", NULL, print_nodes);
}

static int cmd_rooms(int argc, char **argv)
{
	const char *prefix = NULL;
	const struct opt opts[] = { { "--prefix", &prefix }, { NULL, NULL } };
	args_split(argc, argv, opts, NULL, 0);
	return api_get("/api/rooms", NULL, NULL, "prefix", prefix);
}

static int cmd_room(int argc, char **argv)
{
	const char *pos[1];
	if (args_split(argc, argv, NULL, pos, 1) != 1)
		die_usage("%s", "room needs ROOM");
	return api_get("/api/rooms/", pos[0], NULL, NULL, NULL);
}

static int cmd_history(int argc, char **argv)
{
	const char *pos[1], *since = NULL, *limit = NULL;
	const struct opt opts[] = {
		{ "--since", &since }, { "--limit", &limit }, { NULL, NULL },
	};
	if (args_split(argc, argv, opts, pos, 1) != 1)
		die_usage("%s", "history needs ROOM");
	char q[64] = "/history";
	if (since || limit)
		snprintf(q, sizeof(q), "/history?since=%ld&limit=%ld", since ? arg_long("--since", since) : 0,
			 limit ? arg_long("--limit", limit) : 100);
	return api_get("/api/rooms/", pos[0], q, NULL, NULL);
}

static int cmd_connections(int argc, char **argv)
{
	const char *user = NULL;
	const struct opt opts[] = { { "--user", &user }, { NULL, NULL } };
	args_split(argc, argv, opts, NULL, 0);
	return api_get("/api/connections", NULL, NULL, "user", user);
}

static int cmd_kick(int argc, char **argv)
{
	const char *pos[1], *user = NULL;
	const struct opt opts[] = { { "--user", &user }, { NULL, NULL } };
	int n = args_split(argc, argv, opts, pos, 1);
	if ((n == 1) == (user != NULL))
		die_usage("%s", "kick needs a connection ID or --user USER");
	struct buf path = { 0 };
	if (user) {
		buf_appends(&path, "/api/users/");
		http_url_encode(&path, user);
		buf_appends(&path, "/disconnect");
	} else {
		buf_printf(&path, "/api/connections/%ld", arg_long("ID", pos[0]));
	}
	buf_append(&path, "", 1);
	int rc = api_print(user ? "POST" : "DELETE", path.data, NULL);
	buf_free(&path);
	return rc;
}

/* webhooks SUBCOMMAND ...: the /api/webhooks routes. */
static int cmd_webhooks(int argc, char **argv)
{
	const char *pos[3], *events = NULL, *rooms = NULL, *secret = NULL, *attempts = NULL,
		   *timeout = NULL, *status = NULL, *limit = NULL;
	const struct opt opts[] = {
		{ "--events", &events }, { "--rooms", &rooms }, { "--secret", &secret },
		{ "--max-attempts", &attempts }, { "--timeout-ms", &timeout },
		{ "--status", &status }, { "--limit", &limit }, { NULL, NULL },
	};
	int n = args_split(argc, argv, opts, pos, 3);
	const char *sub = n ? pos[0] : "list";
	struct buf path = { 0 };
	buf_appends(&path, "/api/webhooks");
	if (n >= 2 && strcmp(sub, "add") != 0) {
		buf_appends(&path, "/");
		http_url_encode(&path, pos[1]);
	}
	const char *method = "GET";
	json_t *body = NULL;
	int need = 2;               /* positional arguments, the subcommand included */
	if (strcmp(sub, "add") == 0) {
		if (n != 2 || !events)
			die_usage("%s", "webhooks add needs URL and --events a,b");
		method = "POST";
		body = json_pack("{s:s, s:o}", "url", pos[1], "events", arg_list(events));
		if (rooms)
			json_object_set_new(body, "rooms", arg_list(rooms));
		if (secret)
			json_object_set_new(body, "secret", json_string(secret));
		if (attempts)
			json_object_set_new(body, "max_attempts",
					    json_integer(arg_long("--max-attempts", attempts)));
		if (timeout)
			json_object_set_new(body, "timeout_ms",
					    json_integer(arg_long("--timeout-ms", timeout)));
	} else if (strcmp(sub, "list") == 0) {
		need = 1;
	} else if (strcmp(sub, "rm") == 0) {
		method = "DELETE";
	} else if (strcmp(sub, "enable") == 0 || strcmp(sub, "disable") == 0) {
		method = "PATCH";
		body = json_pack("{s:b}", "enabled", sub[0] == 'e');
	} else if (strcmp(sub, "rotate") == 0) {
		method = "PATCH";
		body = secret ? json_pack("{s:s}", "secret", secret) : json_pack("{s:b}", "rotate_secret", 1);
	} else if (strcmp(sub, "test") == 0) {
		method = "POST";
		buf_appends(&path, "/test");
	} else if (strcmp(sub, "deliveries") == 0) {
		buf_appends(&path, "/deliveries");
		char sep = '?';
		if (status) {
			buf_printf(&path, "%cstatus=", sep);
			http_url_encode(&path, status);
			sep = '&';
		}
		if (limit)
			buf_printf(&path, "%climit=%ld", sep, arg_long("--limit", limit));
	} else if (strcmp(sub, "retry") == 0) {
		need = 3;
		method = "POST";
		if (n == 3) {
			buf_appends(&path, "/deliveries/");
			http_url_encode(&path, pos[2]);
			buf_appends(&path, "/retry");
		}
	} else if (strcmp(sub, "show") != 0) {
		die_usage("unknown webhooks subcommand '%s'", sub);
	}
	if (MAX(n, 1) != need)
		die_usage("webhooks %s needs %s", sub, need == 3 ? "ID and DELIVERY" : "ID");
	buf_append(&path, "", 1);
	int rc = api_print(method, path.data, body);
	buf_free(&path);
	return rc;
}

/* Appends "?key=value" or "&key=value" (escaped) to path when value is given. */
static void query_add(struct buf *path, const char *key, const char *value)
{
	if (!value)
		return;
	buf_printf(path, "%c%s=", memchr(path->data, '?', path->len) ? '&' : '?', key);
	http_url_encode(path, value);
}

/* workflows SUBCOMMAND ...: the /api/workflow-definitions and /api/workflows routes. */
static int cmd_workflows(int argc, char **argv)
{
	const char *pos[3], *steps = NULL, *by = NULL, *data = NULL, *actor = NULL, *roles = NULL,
		   *comment = NULL, *version = NULL, *status = NULL, *definition = NULL,
		   *created_by = NULL, *limit = NULL, *before = NULL;
	const struct opt opts[] = {
		{ "--steps", &steps }, { "--by", &by }, { "--data", &data }, { "--actor", &actor },
		{ "--roles", &roles }, { "--comment", &comment }, { "--version", &version },
		{ "--status", &status }, { "--definition", &definition },
		{ "--created-by", &created_by }, { "--limit", &limit }, { "--before", &before },
		{ NULL, NULL },
	};
	int n = args_split(argc, argv, opts, pos, 3);
	const char *sub = n ? pos[0] : "list";
	struct buf path = { 0 };
	const char *method = "POST";
	json_t *body = NULL;
	if (strcmp(sub, "define") == 0) {
		if (n != 2 || !steps)
			die_usage("%s", "workflows define needs NAME and --steps JSON");
		buf_appends(&path, "/api/workflow-definitions");
		body = json_pack("{s:s, s:o}", "name", pos[1], "steps", arg_json(steps));
	} else if (strcmp(sub, "definitions") == 0 && n == 1) {
		method = "GET";
		buf_appends(&path, "/api/workflow-definitions");
	} else if (strcmp(sub, "create") == 0) {
		if (n != 2 || !by)
			die_usage("%s", "workflows create needs DEFINITION and --by USER");
		buf_appends(&path, "/api/workflows");
		body = json_pack("{s:s, s:s}", "definition", pos[1], "created_by", by);
		if (data)
			json_object_set_new(body, "data", arg_json(data));
	} else if (strcmp(sub, "list") == 0 && n <= 1) {
		method = "GET";
		buf_appends(&path, "/api/workflows");
		query_add(&path, "status", status);
		query_add(&path, "definition", definition);
		query_add(&path, "created_by", created_by);
		if (limit)
			buf_printf(&path, "%climit=%ld", memchr(path.data, '?', path.len) ? '&' : '?',
				   arg_long("--limit", limit));
		query_add(&path, "before", before);
	} else if (strcmp(sub, "show") == 0 && n == 2) {
		method = "GET";
		buf_appends(&path, "/api/workflows/");
		http_url_encode(&path, pos[1]);
	} else if (strcmp(sub, "approve") == 0 || strcmp(sub, "reject") == 0 ||
		   strcmp(sub, "cancel") == 0 || strcmp(sub, "bulk") == 0) {
		bool bulk = sub[0] == 'b';
		if (n != (bulk ? 3 : 2) || !actor)
			die_usage("workflows %s needs %s and --actor USER", sub,
				  bulk ? "ACTION and ID,ID,..." : "ID");
		body = json_pack("{s:s}", "actor", actor);
		if (bulk) {
			buf_appends(&path, "/api/workflows/bulk");
			json_object_set_new(body, "action", json_string(pos[1]));
			json_object_set_new(body, "ids", arg_list(pos[2]));
		} else {
			buf_appends(&path, "/api/workflows/");
			http_url_encode(&path, pos[1]);
			buf_printf(&path, "/%s", sub);
		}
		if (roles)
			json_object_set_new(body, "roles", arg_list(roles));
		if (comment)
			json_object_set_new(body, "comment", json_string(comment));
		if (version && !bulk)
			json_object_set_new(body, "version", json_integer(arg_long("--version", version)));
	} else {
		die_usage("bad workflows subcommand '%s' or arguments", sub);
	}
	buf_append(&path, "", 1);
	int rc = api_print(method, path.data, body);
	buf_free(&path);
	return rc;
}

static int cmd_api(int argc, char **argv)
{
	const char *pos[3];
	int n = args_split(argc, argv, NULL, pos, 3);
	if (n < 2 || strncmp(pos[1], "/api/", 5) != 0)
		die_usage("%s", "api needs METHOD and a PATH starting with /api/");
	return api_print(pos[0], pos[1], n == 3 ? arg_json(pos[2]) : NULL);
}

/* ---- verbs: WebSocket clients ------------------------------------------------ */

static void on_signal(int sig)
{
	ctl_stop = 1;
}

/* SIGINT and SIGTERM interrupt poll() instead of killing the process. */
static void catch_stop_signals(void)
{
	struct sigaction sa = { .sa_handler = on_signal };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

/* "/ws" with the token in the query. */
static void ws_path(struct buf *path, const char *token)
{
	buf_appends(path, "/ws");
	if (token && *token) {
		buf_appends(path, "?token=");
		http_url_encode(path, token);
	}
	buf_append(path, "", 1);
}

/* The room's current epoch from the API (malloc'ed). NULL with *missing set
 * when the room has no history yet; NULL after printing why otherwise. */
static char *room_epoch(const char *room, bool *missing)
{
	struct buf path = { 0 }, out = { 0 };
	buf_appends(&path, "/api/rooms/");
	http_url_encode(&path, room);
	buf_append(&path, "", 1);
	int status = api_request("GET", path.data, NULL, &out);
	json_t *v = status == 200 ? json_loadb(out.data, out.len, 0, NULL) : NULL;
	const char *e = json_string_value(json_object_get(v, "epoch"));
	char *epoch = e ? xstrdup(e) : NULL;
	*missing = status == 404;
	if (!epoch && status > 0 && !*missing) {
		fprintf(stderr, "heraldctl: cannot learn the epoch of %s: ", room);
		print_json(stderr, out.data, out.len);
	}
	json_decref(v);
	buf_free(&path);
	buf_free(&out);
	return epoch;
}

static bool close_ok(int code)
{
	return code == WS_CLOSE_NORMAL || code == WS_CLOSE_GOING_AWAY;
}

/* True when the JSON array rooms holds name. */
static bool rooms_has(json_t *rooms, const char *name)
{
	size_t i;
	json_t *r;
	json_array_foreach(rooms, i, r)
		if (json_is_string(r) && strcmp(json_string_value(r), name) == 0)
			return true;
	return false;
}

/* Sends a subscribe or unsubscribe request for room, id "tail". 0 or -1. */
static int tail_request(struct wsclient *w, const char *type, const char *room,
			const char *epoch, long since)
{
	struct buf req = { 0 };
	buf_printf(&req, "{\"type\":\"%s\",\"id\":\"tail\",\"room\":", type);
	buf_append_json_str(&req, room, strlen(room));
	if (epoch) {
		buf_printf(&req, ",\"since\":{\"seq\":%ld,\"epoch\":", since);
		buf_append_json_str(&req, epoch, strlen(epoch));
		buf_appends(&req, "}");
	}
	buf_appends(&req, "}");
	int rc = wsclient_send_text(w, req.data, req.len);
	if (rc < 0)
		fprintf(stderr, "heraldctl: %s\n", w->error);
	buf_free(&req);
	return rc;
}

static int cmd_tail(int argc, char **argv)
{
	const char *pos[1], *since = NULL, *epoch_arg = NULL, *token = NULL;
	const struct opt opts[] = {
		{ "--since", &since }, { "--epoch", &epoch_arg },
		{ "--token", &token }, { NULL, NULL },
	};
	if (args_split(argc, argv, opts, pos, 1) != 1)
		die_usage("%s", "tail needs ROOM");
	const char *room = pos[0];
	long since_seq = since ? arg_long("--since", since) : 0;
	bool missing = false;
	char *epoch = epoch_arg ? xstrdup(epoch_arg) : since ? room_epoch(room, &missing) : NULL;
	if (missing)
		fprintf(stderr, "heraldctl: %s has no history yet: nothing to replay\n", room);
	else if (since && !epoch)
		return 1;

	struct wsclient w;
	struct buf path = { 0 };
	char err[512];
	int rc = 1;
	/* Rooms the server joins by itself (user:SUB, global) are left first, so
	 * that every event printed comes from our own subscription. */
	enum { TAIL_WELCOME, TAIL_LEAVING, TAIL_SUBSCRIBED } state = TAIL_WELCOME;
	ws_path(&path, token);
	if (wsclient_open(&w, ctl.ws_addr, path.data, CTL_WS_TIMEOUT_MS, err, sizeof(err)) < 0) {
		fprintf(stderr, "heraldctl: %s\n", err);
		goto out;
	}
	catch_stop_signals();
	while (!ctl_stop) {
		struct wsclient_msg m;
		int r = wsclient_recv(&w, &m, 500);
		if (r == 0)
			continue;
		if (r < 0) {
			fprintf(stderr, "heraldctl: %s (close code %d)\n", w.error, w.close_code);
			rc = close_ok(w.close_code) ? 0 : 1;
			wsclient_free(&w);
			goto out;
		}
		json_t *v = json_loadb(m.data, m.len, 0, NULL);
		const char *type = json_string_value(json_object_get(v, "type"));
		const char *r_room = json_string_value(json_object_get(v, "room"));
		const char *id = json_string_value(json_object_get(v, "id"));
		bool ours = r_room && strcmp(r_room, room) == 0;
		int sent = 0;
		if (!type) {
			/* not a protocol message: ignore */
		} else if (strcmp(type, "welcome") == 0 && state == TAIL_WELCOME) {
			bool joined = rooms_has(json_object_get(v, "rooms"), room);
			state = joined ? TAIL_LEAVING : TAIL_SUBSCRIBED;
			sent = joined ? tail_request(&w, "unsubscribe", room, NULL, 0)
				      : tail_request(&w, "subscribe", room, epoch, since_seq);
		} else if (strcmp(type, "unsubscribed") == 0 && ours && state == TAIL_LEAVING) {
			state = TAIL_SUBSCRIBED;
			sent = tail_request(&w, "subscribe", room, epoch, since_seq);
		} else if (strcmp(type, "event") == 0 && ours && state == TAIL_SUBSCRIBED) {
			/* The server's frame is compact JSON: already one line. */
			fwrite(m.data, 1, m.len, stdout);
			fputc('\n', stdout);
			fflush(stdout);
		} else if (strcmp(type, "subscribed") == 0 && ours && state == TAIL_SUBSCRIBED) {
			fprintf(stderr, "heraldctl: subscribed to %s at seq %lld (epoch %s, replayed %lld%s)\n",
				room, (long long)json_integer_value(json_object_get(v, "seq")),
				json_string_value(json_object_get(v, "epoch")),
				(long long)json_integer_value(json_object_get(v, "replayed")),
				json_is_false(json_object_get(v, "recovered")) ? ", not recovered" : "");
		} else if (strcmp(type, "error") == 0) {
			fprintf(stderr, "heraldctl: error %s: %s\n",
				json_string_value(json_object_get(v, "code")),
				json_string_value(json_object_get(v, "message")));
			if (id && strcmp(id, "tail") == 0)
				sent = -1;
		}
		json_decref(v);
		if (sent < 0) {
			wsclient_close(&w, WS_CLOSE_NORMAL, NULL);
			goto out;
		}
	}
	wsclient_close(&w, WS_CLOSE_NORMAL, NULL);
	rc = 0;
out:
	free(epoch);
	buf_free(&path);
	return rc;
}

/* ---- connect: the interactive client ------------------------------------------- */

/* Commands run one at a time: a command that expects an answer (every
 * request carries an id) holds the next line until the answer came, so a
 * script piped in sees each reply after its command. */

struct cs_room {
	char *name;
	long long seq;
	char epoch[40];
};

static struct {
	struct wsclient w;
	bool open;
	char *client_id;
	char *user;
	struct cs_room *rooms;
	size_t nrooms, cap;
	long next_id;
	long await_id;            /* request whose answer holds the next line;
				     -1: any message (after a raw send) */
	bool await_welcome;
	int64_t await_until;      /* mono ms */
} cs;

#define CS_REPLY_WAIT_MS 5000

static bool cs_awaiting(void)
{
	return cs.open && (cs.await_id || cs.await_welcome);
}

static void cs_await(long id)
{
	cs.await_id = id;
	cs.await_welcome = id == 0;
	cs.await_until = mono_ms() + CS_REPLY_WAIT_MS;
}

static struct cs_room *cs_room(const char *name, bool add)
{
	for (size_t i = 0; i < cs.nrooms; i++)
		if (strcmp(cs.rooms[i].name, name) == 0)
			return &cs.rooms[i];
	if (!add)
		return NULL;
	xgrow(&cs.rooms, &cs.cap, cs.nrooms + 1, sizeof(*cs.rooms));
	struct cs_room *r = &cs.rooms[cs.nrooms++];
	*r = (struct cs_room){ .name = xstrdup(name) };
	return r;
}

static void cs_reset(void)
{
	for (size_t i = 0; i < cs.nrooms; i++)
		free(cs.rooms[i].name);
	cs.nrooms = 0;
	free(cs.client_id);
	free(cs.user);
	cs.client_id = cs.user = NULL;
	cs.open = false;
	cs.await_id = 0;
	cs.await_welcome = false;
}

static void cs_set(char **field, json_t *v)
{
	free(*field);
	*field = json_is_string(v) ? xstrdup(json_string_value(v)) : NULL;
}

/* Keeps the status view in step with what the server says. */
static void cs_track(const char *p, size_t n)
{
	json_t *v = json_loadb(p, n, 0, NULL);
	const char *type = json_string_value(json_object_get(v, "type"));
	const char *room = json_string_value(json_object_get(v, "room"));
	json_t *id = json_object_get(v, "id");
	if (cs.await_id < 0 || (json_is_integer(id) && json_integer_value(id) == cs.await_id))
		cs.await_id = 0;
	if (!type) {
		json_decref(v);
		return;
	}
	if (strcmp(type, "welcome") == 0) {
		cs.await_welcome = false;
		cs_set(&cs.client_id, json_object_get(v, "client_id"));
		cs_set(&cs.user, json_object_get(v, "user"));
	} else if (strcmp(type, "authenticated") == 0) {
		cs_set(&cs.user, json_object_get(v, "user"));
	} else if (room && (strcmp(type, "subscribed") == 0 || strcmp(type, "event") == 0)) {
		struct cs_room *r = cs_room(room, true);
		const char *epoch = json_string_value(json_object_get(v, "epoch"));
		r->seq = json_integer_value(json_object_get(v, "seq"));
		snprintf(r->epoch, sizeof(r->epoch), "%s", epoch ? epoch : "");
	} else if (room && strcmp(type, "unsubscribed") == 0) {
		struct cs_room *r = cs_room(room, false);
		if (r) {
			free(r->name);
			*r = cs.rooms[--cs.nrooms];
		}
	}
	json_decref(v);
}

/* Sends a request; the next command waits for the answer to id (> 0), or
 * for whatever comes next (-1). */
static void cs_send(struct buf *b, long id)
{
	if (!cs.open) {
		fprintf(stderr, "not connected (use: connect [TOKEN])\n");
		return;
	}
	if (wsclient_send_text(&cs.w, b->data, b->len) < 0)
		fprintf(stderr, "send failed: %s\n", cs.w.error);
	else
		cs_await(id);
}

static void cs_disconnect(void)
{
	if (cs.open)
		wsclient_close(&cs.w, WS_CLOSE_NORMAL, NULL);
	cs_reset();
}

static void cs_status(void)
{
	if (!cs.open) {
		printf("not connected (server %s)\n", ctl.ws_addr);
		return;
	}
	printf("connected to %s as client %s, user %s\n", ctl.ws_addr,
	       cs.client_id ? cs.client_id : "?", cs.user ? cs.user : "(anonymous)");
	for (size_t i = 0; i < cs.nrooms; i++)
		printf("  %s seq %lld epoch %s\n", cs.rooms[i].name, cs.rooms[i].seq, cs.rooms[i].epoch);
}

/* Prints the messages decoded from what was read so far; drops the
 * connection when it ended. */
static void cs_decode(void)
{
	struct wsclient_msg m;
	int r;
	while ((r = wsclient_next(&cs.w, &m)) > 0) {
		fwrite(m.data, 1, m.len, stdout);
		fputc('\n', stdout);
		cs_track(m.data, m.len);
	}
	fflush(stdout);
	int f = wsclient_flush(&cs.w);     /* pongs, or the echo of a close */
	if (r < 0 || f < 0) {
		fprintf(stderr, "connection ended: %s (close code %d)\n", cs.w.error, cs.w.close_code);
		wsclient_free(&cs.w);
		cs_reset();
	}
}

static const char connect_help[] =
	"commands:\n"
	"  connect [TOKEN]              open a connection (anonymous without a token)\n"
	"  auth TOKEN                   authenticate or refresh the token\n"
	"  subscribe ROOM [SEQ EPOCH]   subscribe, replaying what came after SEQ\n"
	"  unsubscribe ROOM\n"
	"  publish ROOM EVENT [JSON]    publish where the namespace allows clients to\n"
	"  ping                         application-level ping\n"
	"  send JSON                    send a raw protocol message\n"
	"  status                       connection, user, rooms and their last seq\n"
	"  disconnect\n"
	"  quit\n";

/* Runs one command line; returns false on quit. */
static bool cs_command(char *line)
{
	char *args[4] = { 0 };
	int n = 0;
	char *save = NULL, *rest = NULL;
	for (char *t = strtok_r(line, " \t", &save); t && n < 4; t = strtok_r(NULL, " \t", &save)) {
		args[n++] = t;
		/* JSON arguments keep their spaces: everything after the words. */
		if ((n == 2 && strcmp(args[0], "send") == 0) ||
		    (n == 3 && strcmp(args[0], "publish") == 0)) {
			rest = save && *save ? save : NULL;
			break;
		}
	}
	if (n == 0 || args[0][0] == '#')
		return true;
	const char *cmd = args[0];
	struct buf b = { 0 };
	long id = cs.next_id + 1;
	if (strcmp(cmd, "quit") == 0 || strcmp(cmd, "exit") == 0) {
		return false;
	} else if (strcmp(cmd, "help") == 0) {
		fputs(connect_help, stdout);
	} else if (strcmp(cmd, "status") == 0) {
		cs_status();
	} else if (strcmp(cmd, "disconnect") == 0) {
		cs_disconnect();
	} else if (strcmp(cmd, "connect") == 0) {
		struct buf path = { 0 };
		char err[512];
		cs_disconnect();
		ws_path(&path, args[1]);
		if (wsclient_open(&cs.w, ctl.ws_addr, path.data, CTL_WS_TIMEOUT_MS, err, sizeof(err)) < 0) {
			fprintf(stderr, "connect failed: %s\n", err);
		} else {
			cs.open = true;
			cs_await(0);
			cs_decode();    /* the welcome may have come with the upgrade */
		}
		buf_free(&path);
	} else if (strcmp(cmd, "auth") == 0 && n >= 2) {
		buf_printf(&b, "{\"type\":\"auth\",\"id\":%ld,\"token\":", id);
		buf_append_json_str(&b, args[1], strlen(args[1]));
		buf_appends(&b, "}");
	} else if ((strcmp(cmd, "subscribe") == 0 || strcmp(cmd, "unsubscribe") == 0) && n >= 2) {
		buf_printf(&b, "{\"type\":\"%s\",\"id\":%ld,\"room\":", cmd, id);
		buf_append_json_str(&b, args[1], strlen(args[1]));
		if (cmd[0] == 's' && n >= 3) {
			buf_printf(&b, ",\"since\":{\"seq\":%lld,\"epoch\":", strtoll(args[2], NULL, 10));
			buf_append_json_str(&b, n >= 4 ? args[3] : "", n >= 4 ? strlen(args[3]) : 0);
			buf_appends(&b, "}");
		}
		buf_appends(&b, "}");
	} else if (strcmp(cmd, "publish") == 0 && n >= 3) {
		json_t *data = rest ? json_loads(rest, JSON_DECODE_ANY, NULL) : json_null();
		if (!data) {
			fprintf(stderr, "invalid JSON data\n");
		} else {
			json_t *m = json_pack("{s:s, s:I, s:s, s:s, s:o}", "type", "publish",
					      "id", (json_int_t)id, "room", args[1],
					      "event", args[2], "data", data);
			char *s = json_dumps(m, JSON_COMPACT);
			buf_appends(&b, s);
			free(s);
			json_decref(m);
		}
	} else if (strcmp(cmd, "ping") == 0) {
		buf_printf(&b, "{\"type\":\"ping\",\"id\":%ld}", id);
	} else if (strcmp(cmd, "send") == 0 && n >= 2) {
		buf_appends(&b, args[1]);
		if (rest) {
			buf_appends(&b, " ");
			buf_appends(&b, rest);
		}
		id = -1;         /* its id, if any, is the user's */
	} else {
		fprintf(stderr, "unknown command or missing argument: %s (try help)\n", cmd);
	}
	if (b.len) {
		cs.next_id += id > 0;
		cs_send(&b, id);
	}
	buf_free(&b);
	fflush(stdout);
	return true;
}

/* Runs the complete lines in in, one at a time while no answer is awaited.
 * Returns false on quit. */
static bool cs_run_lines(struct buf *in)
{
	char *nl;
	while (!cs_awaiting() && in->len && (nl = memchr(in->data, '\n', in->len))) {
		*nl = '\0';
		if (nl > in->data && nl[-1] == '\r')
			nl[-1] = '\0';
		bool go_on = cs_command(in->data);
		buf_consume(in, (size_t)(nl - in->data) + 1);
		if (!go_on)
			return false;
	}
	return true;
}

static int cmd_connect(int argc, char **argv)
{
	const char *token = NULL;
	const struct opt opts[] = { { "--token", &token }, { NULL, NULL } };
	args_split(argc, argv, opts, NULL, 0);
	struct buf in = { 0 };
	bool eof = false;
	int64_t quiet_since = 0;
	if (token)
		buf_printf(&in, "connect %s\n", token);
	else if (isatty(STDIN_FILENO))
		fprintf(stderr, "herald %s (type help)\n", ctl.ws_addr);
	while (cs_run_lines(&in)) {
		int64_t now = mono_ms();
		if (cs_awaiting() && now >= cs.await_until) {
			fprintf(stderr, "no answer within %d ms\n", CS_REPLY_WAIT_MS);
			cs.await_id = 0;
			cs.await_welcome = false;
			continue;
		}
		/* At the end of the input, give the server a moment to answer. */
		if (eof && !cs_awaiting() && (!cs.open || now - quiet_since >= CTL_DRAIN_MS))
			break;
		int timeout = cs_awaiting() ? (int)(cs.await_until - now)
			    : eof ? (int)(quiet_since + CTL_DRAIN_MS - now) : -1;
		struct pollfd p[2] = {
			{ .fd = eof || cs_awaiting() ? -1 : STDIN_FILENO, .events = POLLIN },
			{ .fd = cs.open ? cs.w.fd : -1,
			  .events = (short)(POLLIN | (cs.open && cs.w.out.len ? POLLOUT : 0)) },
		};
		int n = poll(p, 2, timeout);
		if (n < 0 && errno != EINTR)
			break;
		if (n <= 0)
			continue;
		if (p[1].revents & POLLOUT)
			wsclient_flush(&cs.w);
		if (p[1].revents & (POLLIN | POLLHUP | POLLERR)) {
			wsclient_read(&cs.w);    /* at EOF, cs_decode ends the connection */
			cs_decode();
			quiet_since = mono_ms();
		}
		if (p[0].revents & (POLLIN | POLLHUP)) {
			buf_reserve(&in, 4096);
			ssize_t r = read(STDIN_FILENO, in.data + in.len, in.cap - in.len);
			if (r > 0) {
				in.len += (size_t)r;
			} else if (r == 0 || errno != EINTR) {
				eof = true;
				quiet_since = mono_ms();
				if (in.len && in.data[in.len - 1] != '\n')
					buf_append(&in, "\n", 1);    /* a last line without newline */
			}
		}
	}
	cs_disconnect();
	free(cs.rooms);
	buf_free(&in);
	return 0;
}

/* ---- main -------------------------------------------------------------------- */

static const struct verb {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *args;
	const char *help;
} verbs[] = {
	{ "init", cmd_init, "[FILE]", "write a configuration with new random secrets" },
	{ "token", cmd_token, "SUB [--roles a,b] [--rooms 'glob,glob'] [--ttl SECONDS]",
	  "mint an HS256 client token (ttl 3600, 0 = no expiry)" },
	{ "publish", cmd_publish, "ROOM EVENT [JSON] [--key IDEMPOTENCY_KEY]", "publish an event" },
	{ "broadcast", cmd_broadcast, "EVENT [JSON]", "publish to the global room" },
	{ "notify", cmd_notify,
	  "USER TYPE [--title T] [--message M] [--data JSON] [--action-url URL]",
	  "store and deliver a notification" },
	{ "stats", cmd_stats, "", "server statistics" },
	{ "rooms", cmd_rooms, "[--prefix P]", "list rooms" },
	{ "room", cmd_room, "ROOM", "one room's state" },
	{ "history", cmd_history, "ROOM [--since SEQ] [--limit N]", "stored messages of a room" },
	{ "connections", cmd_connections, "[--user U]", "list connections" },
	{ "kick", cmd_kick, "ID | --user U", "close a connection, or all of a user's" },
	{ "webhooks", cmd_webhooks,
	  "[list] | add URL --events a,b [--rooms g,g] [--secret S] [--max-attempts N] "
	  "[--timeout-ms N] | show|rm|test|enable|disable ID | rotate ID [--secret S] | "
	  "deliveries ID [--status S] [--limit N] | retry ID DELIVERY",
	  "manage webhook endpoints and their deliveries" },
	{ "workflows", cmd_workflows,
	  "[list [--status S] [--definition D] [--created-by U] [--limit N] [--before ID]] | "
	  "define NAME --steps JSON | definitions | create DEFINITION --by USER [--data JSON] | "
	  "show ID | approve|reject|cancel ID --actor U [--roles a,b] [--comment C] [--version N] | "
	  "bulk ACTION ID,ID,... --actor U [--roles a,b] [--comment C]",
	  "manage approval workflows" },
	{ "api", cmd_api, "METHOD PATH [JSON]", "call any API route (e.g. GET /api/stats)" },
	{ "tail", cmd_tail, "ROOM [--since SEQ] [--epoch E] [--token T]",
	  "print a room's events as JSON lines" },
	{ "connect", cmd_connect, "[--token T]", "interactive client (type help)" },
};

static void usage(FILE *fp)
{
	fprintf(fp, "usage: heraldctl [-c FILE] [--url URL] [--key KEY] [--ws HOST:PORT] VERB [ARGS]\n"
		    "  -c FILE          configuration (default %s/herald/herald.conf)\n"
		    "  --url URL        API base URL (default http:// + admin_listen)\n"
		    "  --key KEY        API key (default api_key)\n"
		    "  --ws HOST:PORT   client listener for tail and connect (default listen)\n"
		    "verbs:\n", SYSCONFDIR);
	for (size_t i = 0; i < ARRAY_SIZE(verbs); i++)
		fprintf(fp, "  %s%s%s\n      %s\n", verbs[i].name, *verbs[i].args ? " " : "",
			verbs[i].args, verbs[i].help);
}

/* Loads the configuration: the named file must load; the default one may be
 * missing (then defaults and HERALD_* variables apply). 0 or -1. */
static int load_config(const char *path)
{
	char err[512];
	const char *file = path ? path : SYSCONFDIR "/herald/herald.conf";
	if (!path && access(file, R_OK) != 0)
		file = NULL;
	if (config_load(&ctl.cfg, file, err, sizeof(err)) < 0) {
		fprintf(stderr, "heraldctl: %s\n", err);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	const char *cfg_path = NULL, *url = NULL, *key = NULL, *ws = NULL;
	int i = 1;
	for (; i < argc && argv[i][0] == '-'; i++) {
		const char *a = argv[i];
		const char **val = strcmp(a, "-c") == 0 ? &cfg_path : strcmp(a, "--url") == 0 ? &url
				 : strcmp(a, "--key") == 0 ? &key : strcmp(a, "--ws") == 0 ? &ws : NULL;
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage(stdout);
			return 0;
		}
		if (strcmp(a, "-v") == 0 || strcmp(a, "--version") == 0) {
			printf("heraldctl %s\n", HERALD_VERSION);
			return 0;
		}
		if (!val || i + 1 >= argc)
			die_usage("bad option '%s'", a);
		*val = argv[++i];
	}
	if (i >= argc)
		die_usage("%s", "no verb given");
	const char *name = argv[i];
	if (strcmp(name, "help") == 0) {
		usage(stdout);
		return 0;
	}
	const struct verb *v = NULL;
	for (size_t k = 0; k < ARRAY_SIZE(verbs); k++)
		if (strcmp(verbs[k].name, name) == 0)
			v = &verbs[k];
	if (!v)
		die_usage("unknown verb '%s'", name);
	if (sodium_init() < 0) {
		fprintf(stderr, "heraldctl: libsodium failed to initialise\n");
		return 1;
	}
	if (strcmp(name, "init") != 0 && load_config(cfg_path) < 0)
		return 1;

	ctl.api_key = key ? key : ctl.cfg.api_key;
	if (url) {
		snprintf(ctl.api_url, sizeof(ctl.api_url), "%s", url);
		size_t n = strlen(ctl.api_url);
		while (n && ctl.api_url[n - 1] == '/')
			ctl.api_url[--n] = '\0';
	} else if (ctl.cfg.admin_listen) {
		char addr[100];
		connect_addr(addr, sizeof(addr), ctl.cfg.admin_listen);
		snprintf(ctl.api_url, sizeof(ctl.api_url), "http://%s", addr);
	}
	if (ws) {
		/* Accept ws://host:port/ws as well as host:port. */
		const char *p = strstr(ws, "://") ? strstr(ws, "://") + 3 : ws;
		snprintf(ctl.ws_addr, sizeof(ctl.ws_addr), "%.*s", (int)strcspn(p, "/"), p);
	} else if (ctl.cfg.listen) {
		connect_addr(ctl.ws_addr, sizeof(ctl.ws_addr), ctl.cfg.listen);
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	int rc = v->run(argc - i - 1, argv + i + 1);
	curl_global_cleanup();
	config_free(&ctl.cfg);
	return rc;
}
