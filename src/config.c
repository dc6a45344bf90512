/* config.c -- the INI configuration file: defaults, the file, then HERALD_*
 * environment overrides, checked as a whole; and the lookups made with it. */

#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "config.h"
#include "http.h"
#include "log.h"
#include "siopkt.h"
#include "util.h"

/* ---------------------------------------------------------------- keys */

enum config_type {
	CONFIG_STR,         /* a string that must not be empty */
	CONFIG_STR_OPT,     /* a string; empty means unset (NULL) */
	CONFIG_ADDR,        /* host:port */
	CONFIG_INT,
	CONFIG_SIZE,        /* bytes, with optional k or m suffix (KiB, MiB) */
	CONFIG_BOOL,
	CONFIG_WORKERS,     /* "auto" or an integer */
	CONFIG_DURABILITY,  /* normal | full */
	CONFIG_ROLE,        /* primary | edge */
	CONFIG_LOG_LEVEL,
	CONFIG_ORIGINS,     /* list separated by commas or spaces */
	CONFIG_RULE,        /* an acl rule */
	CONFIG_SCHEDULE,    /* a webhook retry schedule: seconds separated by commas */
	CONFIG_CIDRS,       /* addresses and CIDR networks separated by commas or spaces */
};

struct config_key {
	const char *name;
	enum config_type type;
	size_t off;         /* in struct config, or in struct ns_config */
	long long min, max;
	const char *def;    /* NULL: no default */
};

#define KEY(field, type, min, max, def) \
	{ #field, type, offsetof(struct config, field), min, max, def }
#define NS_KEY(field, type, min, max, def) \
	{ #field, type, offsetof(struct ns_config, field), min, max, def }
#define KIB 1024LL
#define MIB (1024LL * 1024)
#define GIB (1024LL * 1024 * 1024)
#define MAX_WORKERS 64      /* the hub keeps one bit per worker in a uint64_t */
#ifndef DATADIR
#define DATADIR "/usr/local/share"
#endif

/* Top-level keys, also HERALD_<NAME> in the environment. The sample
 * etc/herald.conf documents each one. */
static const struct config_key config_keys[] = {
	KEY(listen,                   CONFIG_ADDR,       0, 0, "0.0.0.0:8080"),
	KEY(admin_listen,             CONFIG_ADDR,       0, 0, "127.0.0.1:8081"),
	KEY(workers,                  CONFIG_WORKERS,    1, MAX_WORKERS, "auto"),
	KEY(database,                 CONFIG_STR,        0, 0, "./var/herald.db"),
	{ "durability", CONFIG_DURABILITY, offsetof(struct config, durability_full), 0, 0, "normal" },
	KEY(max_database_size,        CONFIG_SIZE,       0, 1024 * GIB, "0"),
	KEY(api_key,                  CONFIG_STR_OPT,    0, 0, NULL),
	KEY(jwt_secret,               CONFIG_STR_OPT,    0, 0, NULL),
	KEY(jwt_public_key,           CONFIG_STR_OPT,    0, 0, NULL),
	KEY(jwt_issuer,               CONFIG_STR_OPT,    0, 0, NULL),
	KEY(jwt_audience,             CONFIG_STR_OPT,    0, 0, NULL),
	KEY(jwt_leeway,               CONFIG_INT,        0, 3600, "30"),
	KEY(allow_anonymous,          CONFIG_BOOL,       0, 0, "yes"),
	KEY(allowed_origins,          CONFIG_ORIGINS,    0, 0, "*"),
	KEY(echo,                     CONFIG_BOOL,       0, 0, "off"),
	KEY(log_level,                CONFIG_LOG_LEVEL,  0, 0, "info"),
	KEY(log_file,                 CONFIG_STR_OPT,    0, 0, ""),
	KEY(trusted_proxies,          CONFIG_CIDRS,      0, 0, ""),
	KEY(dashboard_dir,            CONFIG_STR,        0, 0, DATADIR "/herald/dashboard"),
	KEY(max_connections,          CONFIG_INT,        1, 10000000, "100000"),
	KEY(max_connections_per_ip,   CONFIG_INT,        1, INT_MAX, "1000"),
	KEY(max_connections_per_user, CONFIG_INT,        1, INT_MAX, "20"),
	KEY(max_handshakes,           CONFIG_INT,        1, 10000000, "4096"),
	KEY(max_handshakes_per_ip,    CONFIG_INT,        1, 10000000, "64"),
	KEY(max_rooms_per_connection, CONFIG_INT,        1, 1000000, "100"),
	KEY(max_message_size,         CONFIG_SIZE,       1, GIB, "65536"),
	KEY(max_body_size,            CONFIG_SIZE,       1, GIB, "1048576"),
	KEY(max_header_size,          CONFIG_SIZE,       256, MIB, "8192"),
	KEY(max_headers,              CONFIG_INT,        1, HTTP_MAX_HEADERS, "64"),
	KEY(max_json_depth,           CONFIG_INT,        1, 1000, "32"),
	KEY(send_queue_max,           CONFIG_SIZE,       1, GIB, "4194304"),
	KEY(rate_per_sec,             CONFIG_INT,        1, 1000000, "50"),
	KEY(rate_burst,               CONFIG_INT,        1, 1000000, "100"),
	KEY(handshake_timeout,        CONFIG_INT,        1, 3600, "10"),
	KEY(auth_timeout,             CONFIG_INT,        1, 3600, "10"),
	KEY(token_grace,              CONFIG_INT,        0, 3600, "5"),
	KEY(ping_interval,            CONFIG_INT,        1, 3600, "25"),
	KEY(ping_timeout,             CONFIG_INT,        2, 86400, "60"),
	KEY(replay_limit,             CONFIG_INT,        0, INT_MAX, "10000"),
	KEY(shutdown_timeout,         CONFIG_INT,        1, 3600, "10"),
	KEY(socketio_path,            CONFIG_STR,        0, 0, "/socket.io/"),
	KEY(socketio_ping_interval,   CONFIG_INT,        10, 3600000, "25000"),
	KEY(socketio_ping_timeout,    CONFIG_INT,        10, 3600000, "20000"),
	KEY(socketio_max_payload,     CONFIG_SIZE,       1024, GIB, "1000000"),
	KEY(socketio_recovery,        CONFIG_BOOL,       0, 0, "on"),
	KEY(socketio_recovery_window, CONFIG_INT,        1, 365 * 86400, "86400"),
	KEY(socketio_alias,           CONFIG_STR_OPT,    0, 0, ""),
	KEY(socketio_namespaces,      CONFIG_STR_OPT,    0, 0, ""),
	KEY(socketio_test,            CONFIG_BOOL,       0, 0, "off"),
	KEY(webhook_retry_schedule,   CONFIG_SCHEDULE,   0, 0, "0,5,300,1800,7200,18000,36000,50400,72000,86400"),
	KEY(webhook_timeout_ms,       CONFIG_INT,        1, 600000, "10000"),
	KEY(webhook_concurrency,      CONFIG_INT,        1, 1000, "4"),
	KEY(webhook_max_in_flight,    CONFIG_INT,        1, 100000, "256"),
	KEY(webhook_breaker_failures, CONFIG_INT,        1, 1000000, "5"),
	KEY(webhook_breaker_cooldown_ms, CONFIG_INT,     1, 86400000, "30000"),
	KEY(webhook_secret_overlap,   CONFIG_INT,        0, 30 * 86400, "86400"),
	KEY(cluster_redis,            CONFIG_STR_OPT,    0, 0, ""),
	{ "node_role", CONFIG_ROLE, offsetof(struct config, node_edge), 0, 0, "primary" },
	KEY(node_name,                CONFIG_STR_OPT,    0, 0, ""),
	KEY(node_api_url,             CONFIG_STR_OPT,    0, 0, ""),
};

/* Keys of a [namespace NAME] section. subscribe has no default: a namespace
 * the file adds must say who may read it. */
static const struct config_key config_ns_keys[] = {
	NS_KEY(subscribe,    CONFIG_RULE, 0, 0, NULL),
	NS_KEY(publish,      CONFIG_RULE, 0, 0, "api"),
	NS_KEY(history_size, CONFIG_INT,  0, 1000000, "1000"),
	NS_KEY(history_ttl,  CONFIG_INT,  0, INT_MAX, "86400"),
	NS_KEY(throttle_ms,  CONFIG_INT,  0, 3600000, "0"),
};

/* Namespaces that exist unless the file defines them (SPEC §4). A file that
 * does define one starts from these rules and may change any key. */
static const struct { const char *name, *subscribe; } config_builtins[] = {
	{ "user",      "owner" },
	{ "global",    "public" },
	{ "workflow",  "authenticated" },
	{ "workflows", "role:admin" },
	{ "admin",     "role:admin" },
};

/* ---------------------------------------------------------------- values */

static bool config_is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Trims s in place; returns the first non-blank byte. */
static char *config_trim(char *s)
{
	size_t n;

	while (config_is_space(*s))
		s++;
	n = strlen(s);
	while (n > 0 && config_is_space(s[n - 1]))
		s[--n] = '\0';
	return s;
}

/* Decimal integer, optionally negative (so that "-1" reads as out of range
 * rather than as garbage), with a k or m suffix when sizes is set. */
static int config_parse_number(const char *s, bool sizes, long long *out)
{
	long long v = 0, mult = 1;
	bool neg = false;

	if (*s == '-') {
		neg = true;
		s++;
	}
	if (*s < '0' || *s > '9')
		return -1;
	for (; *s >= '0' && *s <= '9'; s++) {
		int d = *s - '0';
		if (v > (LLONG_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	if (sizes && (*s == 'k' || *s == 'K')) {
		mult = KIB;
		s++;
	} else if (sizes && (*s == 'm' || *s == 'M')) {
		mult = MIB;
		s++;
	}
	if (*s != '\0' || v > LLONG_MAX / mult)
		return -1;
	*out = neg ? -v * mult : v * mult;
	return 0;
}

static int config_parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = { "yes", "on", "true", "1" };
	static const char *const no[] = { "no", "off", "false", "0" };

	for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -1;
}

/* Lowercases s into out; -1 when it does not fit. */
static int config_lower(const char *s, char *out, size_t outlen)
{
	size_t i;

	for (i = 0; s[i] != '\0'; i++) {
		if (i + 1 >= outlen)
			return -1;
		out[i] = (char)(s[i] >= 'A' && s[i] <= 'Z' ? s[i] - 'A' + 'a' : s[i]);
	}
	out[i] = '\0';
	return 0;
}

static int config_cpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	if (n < 1)
		return 1;
	return n > MAX_WORKERS ? MAX_WORKERS : (int)n;
}

static void config_free_origins(struct config *cfg)
{
	for (size_t i = 0; i < cfg->nallowed_origins; i++)
		free(cfg->allowed_origins[i]);
	free(cfg->allowed_origins);
	cfg->allowed_origins = NULL;
	cfg->nallowed_origins = 0;
}

/* An empty list is valid: then no browser origin may open a WebSocket. */
static int config_set_origins(struct config *cfg, const char *v, char *msg, size_t msglen)
{
	char **list = NULL;
	size_t n = 0;

	while (*v != '\0') {
		size_t len = strcspn(v, ", \t");
		if (len > 0) {
			/* Browsers send "scheme://host[:port]", never a path. */
			if (v[len - 1] == '/') {
				snprintf(msg, msglen, "allowed_origins: '%.*s' must not end with '/'",
					 (int)MIN(len, 200), v);
				goto fail;
			}
			list = xrealloc(list, (n + 1) * sizeof(*list));
			list[n++] = xstrndup(v, len);
			v += len;
		} else {
			v++;
		}
	}
	config_free_origins(cfg);
	cfg->allowed_origins = list;
	cfg->nallowed_origins = n;
	return 0;

fail:
	for (size_t i = 0; i < n; i++)
		free(list[i]);
	free(list);
	return -1;
}

/* Sets key k of base (a struct config, or a struct ns_config for namespace
 * keys) from the text v. Returns 0, or -1 with a message in msg; on error
 * the old value stays. */
static int config_set(void *base, const struct config_key *k, const char *v,
		      char *msg, size_t msglen)
{
	void *field = (char *)base + k->off;
	struct sockaddr_in sa;
	long long n;
	bool b;
	enum log_level level;
	struct acl_rule rule;
	char why[160], lower[16];

	switch (k->type) {
	case CONFIG_ADDR:
		if (parse_hostport(v, &sa) < 0) {
			snprintf(msg, msglen, "bad address '%s' for %s: expected IPv4:port", v, k->name);
			return -1;
		}
		/* fallthrough */
	case CONFIG_STR:
		if (*v == '\0') {
			snprintf(msg, msglen, "%s must not be empty", k->name);
			return -1;
		}
		/* fallthrough */
	case CONFIG_STR_OPT:
		free(*(char **)field);
		*(char **)field = *v != '\0' ? xstrdup(v) : NULL;
		return 0;
	case CONFIG_INT:
	case CONFIG_SIZE:
		if (config_parse_number(v, k->type == CONFIG_SIZE, &n) < 0 || n < k->min || n > k->max) {
			snprintf(msg, msglen, "bad value '%s' for %s: expected %s from %lld to %lld%s",
				 v, k->name, k->type == CONFIG_SIZE ? "a size" : "an integer",
				 k->min, k->max, k->type == CONFIG_SIZE ? " bytes (k, m suffixes allowed)" : "");
			return -1;
		}
		if (k->type == CONFIG_INT)
			*(int *)field = (int)n;
		else
			*(size_t *)field = (size_t)n;
		return 0;
	case CONFIG_SCHEDULE:
		if (webhook_schedule_parse(field, v) < 0) {
			snprintf(msg, msglen, "bad value '%s' for %s: expected 1 to %d delays in seconds "
				 "separated by commas", v, k->name, WEBHOOK_SCHEDULE_MAX);
			return -1;
		}
		return 0;
	case CONFIG_BOOL:
		if (config_parse_bool(v, &b) < 0) {
			snprintf(msg, msglen, "bad value '%s' for %s: expected yes or no", v, k->name);
			return -1;
		}
		*(bool *)field = b;
		return 0;
	case CONFIG_WORKERS:
		if (strcasecmp(v, "auto") == 0) {
			*(int *)field = config_cpus();
			return 0;
		}
		if (config_parse_number(v, false, &n) < 0 || n < k->min || n > k->max) {
			snprintf(msg, msglen, "bad value '%s' for %s: expected auto or an integer from %lld to %lld",
				 v, k->name, k->min, k->max);
			return -1;
		}
		*(int *)field = (int)n;
		return 0;
	case CONFIG_DURABILITY:
		if (strcasecmp(v, "normal") != 0 && strcasecmp(v, "full") != 0) {
			snprintf(msg, msglen, "bad value '%s' for %s: expected normal or full", v, k->name);
			return -1;
		}
		*(bool *)field = strcasecmp(v, "full") == 0;
		return 0;
	case CONFIG_ROLE:
		if (strcasecmp(v, "primary") != 0 && strcasecmp(v, "edge") != 0) {
			snprintf(msg, msglen, "bad value '%s' for %s: expected primary or edge", v, k->name);
			return -1;
		}
		*(bool *)field = strcasecmp(v, "edge") == 0;
		return 0;
	case CONFIG_LOG_LEVEL:
		/* Case-insensitive like every other word value here. */
		if (config_lower(v, lower, sizeof(lower)) < 0 || log_level_parse(lower, &level) < 0) {
			snprintf(msg, msglen, "bad value '%s' for %s: expected debug, info, warn or error",
				 v, k->name);
			return -1;
		}
		*(int *)field = (int)level;
		return 0;
	case CONFIG_ORIGINS:
		return config_set_origins(base, v, msg, msglen);
	case CONFIG_CIDRS: {
		struct cidr_list list;
		if (cidr_list_parse(v, &list, why, sizeof(why)) < 0) {
			snprintf(msg, msglen, "bad value for %s: %s", k->name, why);
			return -1;
		}
		cidr_list_free(field);
		*(struct cidr_list *)field = list;
		return 0;
	}
	case CONFIG_RULE:
		if (acl_rule_parse(v, &rule, why, sizeof(why)) < 0) {
			snprintf(msg, msglen, "bad %s rule: %s", k->name, why);
			return -1;
		}
		acl_rule_free(field);
		*(struct acl_rule *)field = rule;
		return 0;
	}
	snprintf(msg, msglen, "%s: unhandled type", k->name);
	return -1;
}

static const struct config_key *config_key_find(const struct config_key *keys, size_t n,
						const char *name)
{
	for (size_t i = 0; i < n; i++) {
		if (strcmp(keys[i].name, name) == 0)
			return &keys[i];
	}
	return NULL;
}

/* ---------------------------------------------------------------- namespaces */

static struct ns_config *config_ns_find(struct config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->nns; i++) {
		if (strcmp(cfg->ns[i].name, name) == 0)
			return &cfg->ns[i];
	}
	return NULL;
}

/* Appends namespace name with its defaults (a built-in's rules when it is
 * one). The pointer is valid until the next add. */
static struct ns_config *config_ns_add(struct config *cfg, const char *name)
{
	struct ns_config *ns;
	char msg[256];

	cfg->ns = xrealloc(cfg->ns, (cfg->nns + 1) * sizeof(*cfg->ns));
	ns = &cfg->ns[cfg->nns++];
	memset(ns, 0, sizeof(*ns));
	ns->name = xstrdup(name);
	for (size_t i = 0; i < ARRAY_SIZE(config_ns_keys); i++) {
		const struct config_key *k = &config_ns_keys[i];
		if (k->def != NULL && config_set(ns, k, k->def, msg, sizeof(msg)) < 0)
			fatal("event=config_bug error=\"%s\"", msg);
	}
	for (size_t i = 0; i < ARRAY_SIZE(config_builtins); i++) {
		if (strcmp(config_builtins[i].name, name) == 0 &&
		    config_set(ns, &config_ns_keys[0], config_builtins[i].subscribe, msg,
			       sizeof(msg)) < 0)
			fatal("event=config_bug error=\"%s\"", msg);
	}
	return ns;
}

/* A namespace is named like the part of a room before ':', or is "*", the
 * catch-all for rooms of no configured namespace. */
static bool config_ns_name_valid(const char *name)
{
	size_t n = strlen(name);

	if (strcmp(name, "*") == 0)
		return true;
	return n > 0 && strchr(name, ':') == NULL && acl_room_valid(name, n);
}

/* ---------------------------------------------------------------- file */

struct config_parser {
	struct config *cfg;
	const char *file;
	int line;
	bool in_ns;          /* inside a [namespace] section */
	size_t nsi;          /* its index in cfg->ns */
	int ns_line;         /* the line of its header */
	char *err;
	size_t errlen;
};

__attribute__((format(printf, 3, 4)))
static int config_error_at(struct config_parser *p, int line, const char *fmt, ...)
{
	va_list ap;
	int n = snprintf(p->err, p->errlen, "%s:%d: ", p->file, line);

	if (n >= 0 && (size_t)n < p->errlen) {
		va_start(ap, fmt);
		vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return -1;
}

/* Called when a namespace section ends. */
static int config_ns_finish(struct config_parser *p)
{
	const struct ns_config *ns;

	if (!p->in_ns)
		return 0;
	p->in_ns = false;
	ns = &p->cfg->ns[p->nsi];
	/* acl_rule_parse never yields an empty rule, so no flags means unset. */
	if (ns->subscribe.flags == 0)
		return config_error_at(p, p->ns_line, "namespace '%s' has no subscribe rule", ns->name);
	return 0;
}

static int config_section(struct config_parser *p, char *s)
{
	size_t n = strlen(s);
	char *name;

	if (n < 2 || s[n - 1] != ']')
		return config_error_at(p, p->line, "bad section header '%s'", s);
	s[n - 1] = '\0';
	s = config_trim(s + 1);
	if (config_ns_finish(p) < 0)
		return -1;
	if (strcmp(s, "general") == 0)
		return 0;
	if (strncmp(s, "namespace", 9) != 0 || (s[9] != ' ' && s[9] != '\t'))
		return config_error_at(p, p->line, "unknown section '[%s]'", s);
	name = config_trim(s + 9);
	if (!config_ns_name_valid(name))
		return config_error_at(p, p->line, "bad namespace name '%s'", name);
	if (config_ns_find(p->cfg, name) != NULL)
		return config_error_at(p, p->line, "namespace '%s' defined twice", name);
	config_ns_add(p->cfg, name);
	p->in_ns = true;
	p->nsi = p->cfg->nns - 1;
	p->ns_line = p->line;
	return 0;
}

/* Cuts a trailing comment: '#' after whitespace. A '#' inside a value
 * ("secret#1") is kept. */
static void config_strip_comment(char *s)
{
	for (char *c = s + 1; *c != '\0'; c++) {
		if (*c == '#' && (c[-1] == ' ' || c[-1] == '\t')) {
			*c = '\0';
			return;
		}
	}
}

static int config_line(struct config_parser *p, char *line)
{
	const struct config_key *k;
	char *s = config_trim(line), *eq, *key, *value;
	char msg[512];

	if (*s == '\0' || *s == '#' || *s == ';')
		return 0;
	config_strip_comment(s);
	s = config_trim(s);
	if (*s == '[')
		return config_section(p, s);

	eq = strchr(s, '=');
	if (eq == NULL)
		return config_error_at(p, p->line, "expected 'key = value', got '%s'", s);
	*eq = '\0';
	key = config_trim(s);
	value = config_trim(eq + 1);
	if (*key == '\0')
		return config_error_at(p, p->line, "missing key before '='");

	if (p->in_ns) {
		struct ns_config *ns = &p->cfg->ns[p->nsi];
		k = config_key_find(config_ns_keys, ARRAY_SIZE(config_ns_keys), key);
		if (k == NULL)
			return config_error_at(p, p->line, "unknown key '%s' in [namespace %s]",
					       key, ns->name);
		if (config_set(ns, k, value, msg, sizeof(msg)) < 0)
			return config_error_at(p, p->line, "%s", msg);
		return 0;
	}
	k = config_key_find(config_keys, ARRAY_SIZE(config_keys), key);
	if (k == NULL)
		return config_error_at(p, p->line, "unknown key '%s'", key);
	/* A repeated key is allowed: the last one wins, so a line appended to
	 * a file overrides what came before. */
	if (config_set(p->cfg, k, value, msg, sizeof(msg)) < 0)
		return config_error_at(p, p->line, "%s", msg);
	return 0;
}

static int config_read(struct config *cfg, const char *path, char *err, size_t errlen)
{
	struct config_parser p = { cfg, path, 0, false, 0, 0, err, errlen };
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	FILE *f = fopen(path, "r");

	if (f == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	while ((n = getline(&line, &cap, f)) >= 0) {
		char *s = line;
		p.line++;
		if (memchr(line, '\0', (size_t)n) != NULL) {
			config_error_at(&p, p.line, "NUL byte in line");
			goto fail;
		}
		/* Editors on some systems start a UTF-8 file with a BOM. */
		if (p.line == 1 && n >= 3 && memcmp(s, "\xef\xbb\xbf", 3) == 0)
			s += 3;
		if (config_line(&p, s) < 0)
			goto fail;
	}
	if (ferror(f)) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto fail;
	}
	if (config_ns_finish(&p) < 0)
		goto fail;
	free(line);
	fclose(f);
	return 0;

fail:
	free(line);
	fclose(f);
	return -1;
}

/* ---------------------------------------------------------------- load */

/* HERALD_<KEY> for every top-level key, taken as is (no trimming). */
static int config_env(struct config *cfg, char *err, size_t errlen)
{
	char name[64], msg[512];

	for (size_t i = 0; i < ARRAY_SIZE(config_keys); i++) {
		const struct config_key *k = &config_keys[i];
		size_t j = 7;
		const char *v;

		memcpy(name, "HERALD_", j);
		for (const char *c = k->name; *c != '\0' && j + 1 < sizeof(name); c++)
			name[j++] = (*c >= 'a' && *c <= 'z') ? (char)(*c - 'a' + 'A') : *c;
		name[j] = '\0';
		v = getenv(name);
		if (v == NULL)
			continue;
		if (config_set(cfg, k, v, msg, sizeof(msg)) < 0) {
			snprintf(err, errlen, "%s: %s", name, msg);
			return -1;
		}
	}
	return 0;
}

/* redis://HOST:PORT[/DB] into redis_host, redis_port and redis_db. */
static int parse_redis_url(struct config *cfg, const char *url)
{
	const char *p = url;
	if (strncmp(p, "redis://", 8) != 0)
		return -1;
	p += 8;
	const char *colon = strchr(p, ':');
	if (!colon || colon == p || colon - p > 255)
		return -1;
	char *end;
	errno = 0;
	long port = strtol(colon + 1, &end, 10);
	if (errno || end == colon + 1 || port < 1 || port > 65535)
		return -1;
	long db = 0;
	if (*end == '/') {
		const char *d = end + 1;
		db = strtol(d, &end, 10);
		if (end == d || db < 0 || db > 1000)
			return -1;
	}
	if (*end)
		return -1;
	cfg->redis_host = xstrndup(p, (size_t)(colon - p));
	cfg->redis_port = (int)port;
	cfg->redis_db = (int)db;
	return 0;
}

/* The cluster keys (SPEC §15): a node name and the address of its admin
 * API that other nodes use, both derived from the listeners unless set. */
static int config_cluster(struct config *cfg, const char *where, char *err, size_t errlen)
{
	if (!cfg->cluster_redis) {
		if (cfg->node_edge) {
			snprintf(err, errlen, "%s: node_role = edge needs cluster_redis", where);
			return -1;
		}
		return 0;
	}
	if (parse_redis_url(cfg, cfg->cluster_redis) < 0) {
		snprintf(err, errlen, "%s: cluster_redis (%s) is not redis://HOST:PORT[/DB]", where,
			 cfg->cluster_redis);
		return -1;
	}
	if (!cfg->api_key) {
		snprintf(err, errlen, "%s: cluster_redis needs api_key: nodes call each other's API with it",
			 where);
		return -1;
	}
	if (!cfg->node_name)
		cfg->node_name = xstrdup(cfg->listen);
	if (!cfg->node_api_url) {
		size_t n = strlen(cfg->admin_listen) + 8;
		cfg->node_api_url = xmalloc(n);
		snprintf(cfg->node_api_url, n, "http://%s", cfg->admin_listen);
	}
	return 0;
}

/* A Socket.IO namespace of socketio_namespaces: "/" and then room-name
 * characters or '/', as clients put it in packets. */
static bool config_sio_nsp_valid(const char *nsp)
{
	size_t n = strlen(nsp);

	if (n < 2 || n > SIO_NSP_MAX || nsp[0] != '/')
		return false;
	for (size_t i = 1; i < n; i++) {
		if (nsp[i] != '/' && !acl_room_valid(&nsp[i], 1))
			return false;
	}
	return true;
}

/* One "/NSP=NAMESPACE" of socketio_namespaces (trimmed; cut up here). */
static int config_sio_nsp_add(struct config *cfg, char *item, const char *where, char *err,
			      size_t errlen)
{
	char *eq = strchr(item, '='), *nsp, *ns;

	if (eq == NULL) {
		snprintf(err, errlen, "%s: socketio_namespaces: '%s' is not /NAME=NAMESPACE", where,
			 item);
		return -1;
	}
	*eq = '\0';
	nsp = config_trim(item);
	ns = config_trim(eq + 1);
	if (strcmp(nsp, "/") == 0) {
		snprintf(err, errlen, "%s: socketio_namespaces: / is herald's own namespace "
			 "(every room)", where);
		return -1;
	}
	if (!config_sio_nsp_valid(nsp)) {
		snprintf(err, errlen, "%s: socketio_namespaces: bad Socket.IO namespace '%s': "
			 "expected '/' then 1 to %d of A-Z a-z 0-9 _ . : @ - /", where, nsp,
			 SIO_NSP_MAX - 1);
		return -1;
	}
	if (config_sio_namespace(cfg, nsp, strlen(nsp)) != NULL) {
		snprintf(err, errlen, "%s: socketio_namespaces: %s is listed twice", where, nsp);
		return -1;
	}
	if (cfg->socketio_test && strcmp(nsp, "/custom") == 0) {
		snprintf(err, errlen, "%s: socketio_namespaces: /custom is the conformance mode's "
			 "(socketio_test = on)", where);
		return -1;
	}
	if (strcmp(ns, "*") == 0 || !config_ns_name_valid(ns) ||
	    config_namespace(cfg, ns) == NULL) {
		snprintf(err, errlen, "%s: socketio_namespaces: %s=%s: no namespace '%s' (a "
			 "[namespace %s] section, or a built-in one)", where, nsp, ns, ns, ns);
		return -1;
	}
	cfg->sio_nsps = xrealloc(cfg->sio_nsps, (cfg->nsio_nsps + 1) * sizeof(*cfg->sio_nsps));
	cfg->sio_nsps[cfg->nsio_nsps++] = (struct config_sio_nsp){ xstrdup(nsp), xstrdup(ns) };
	return 0;
}

/* socketio_namespaces = /NSP=NAMESPACE[, ...]: each Socket.IO namespace once,
 * onto a herald namespace that exists (declared, built in, or under "*"). */
static int config_sio_namespaces(struct config *cfg, const char *where, char *err, size_t errlen)
{
	for (const char *p = cfg->socketio_namespaces; p != NULL && *p != '\0';) {
		size_t len = strcspn(p, ",");
		char *item = xstrndup(p, len), *s = config_trim(item);
		int rc = *s != '\0' ? config_sio_nsp_add(cfg, s, where, err, errlen) : 0;

		free(item);
		if (rc < 0)
			return -1;
		p += len + (p[len] == ',');
	}
	return 0;
}

/* Rules that span keys. */
static int config_validate(struct config *cfg, char *err, size_t errlen)
{
	const char *where = cfg->path ? cfg->path : "configuration";
	struct sockaddr_in a, b;

	if (cfg->ping_timeout <= cfg->ping_interval) {
		snprintf(err, errlen, "%s: ping_timeout (%d) must be greater than ping_interval (%d)",
			 where, cfg->ping_timeout, cfg->ping_interval);
		return -1;
	}
	if (cfg->socketio_path[0] != '/') {
		snprintf(err, errlen, "%s: socketio_path (%s) must start with '/'", where,
			 cfg->socketio_path);
		return -1;
	}
	if (config_sio_namespaces(cfg, where, err, errlen) < 0)
		return -1;
	if (config_cluster(cfg, where, err, errlen) < 0)
		return -1;
	/* With SO_REUSEPORT, two listeners on one port would both bind and
	 * share the traffic instead of failing: refuse that here. */
	if (parse_hostport(cfg->listen, &a) == 0 && parse_hostport(cfg->admin_listen, &b) == 0 &&
	    a.sin_port == b.sin_port && a.sin_port != 0 &&
	    (a.sin_addr.s_addr == b.sin_addr.s_addr || a.sin_addr.s_addr == htonl(INADDR_ANY) ||
	     b.sin_addr.s_addr == htonl(INADDR_ANY))) {
		snprintf(err, errlen, "%s: listen (%s) and admin_listen (%s) use the same port",
			 where, cfg->listen, cfg->admin_listen);
		return -1;
	}
	return 0;
}

/* Defaults, then the file, then the environment; the order is what lets an
 * operator override a packaged file. On failure cfg is left zeroed, with
 * nothing to free, so a failed reload can simply drop it. */
int config_load(struct config *cfg, const char *path, char *err, size_t errlen)
{
	char msg[512];

	memset(cfg, 0, sizeof(*cfg));
	for (size_t i = 0; i < ARRAY_SIZE(config_keys); i++) {
		const struct config_key *k = &config_keys[i];
		if (k->def != NULL && config_set(cfg, k, k->def, msg, sizeof(msg)) < 0)
			fatal("event=config_bug error=\"%s\"", msg);
	}
	if (path != NULL) {
		cfg->path = xstrdup(path);
		if (config_read(cfg, path, err, errlen) < 0)
			goto fail;
	}
	for (size_t i = 0; i < ARRAY_SIZE(config_builtins); i++) {
		if (config_ns_find(cfg, config_builtins[i].name) == NULL)
			config_ns_add(cfg, config_builtins[i].name);
	}
	if (config_env(cfg, err, errlen) < 0)
		goto fail;
	if (config_validate(cfg, err, errlen) < 0)
		goto fail;
	return 0;

fail:
	config_free(cfg);
	return -1;
}

void config_free(struct config *cfg)
{
	if (cfg == NULL)
		return;
	for (size_t i = 0; i < ARRAY_SIZE(config_keys); i++) {
		const struct config_key *k = &config_keys[i];
		void *field = (char *)cfg + k->off;
		if (k->type == CONFIG_STR || k->type == CONFIG_STR_OPT || k->type == CONFIG_ADDR)
			free(*(char **)field);
		else if (k->type == CONFIG_CIDRS)
			cidr_list_free(field);
	}
	config_free_origins(cfg);
	for (size_t i = 0; i < cfg->nns; i++) {
		free(cfg->ns[i].name);
		acl_rule_free(&cfg->ns[i].subscribe);
		acl_rule_free(&cfg->ns[i].publish);
	}
	free(cfg->ns);
	for (size_t i = 0; i < cfg->nsio_nsps; i++) {
		free(cfg->sio_nsps[i].nsp);
		free(cfg->sio_nsps[i].ns);
	}
	free(cfg->sio_nsps);
	free(cfg->path);
	free(cfg->redis_host);
	memset(cfg, 0, sizeof(*cfg));
}

/* ---------------------------------------------------------------- lookups */

const struct ns_config *config_namespace(const struct config *cfg, const char *room)
{
	const struct ns_config *any = NULL;
	size_t n;

	if (room == NULL)
		return NULL;
	n = acl_room_namespace(room, NULL);
	for (size_t i = 0; i < cfg->nns; i++) {
		const char *name = cfg->ns[i].name;
		if (strncmp(name, room, n) == 0 && name[n] == '\0')
			return &cfg->ns[i];
		if (strcmp(name, "*") == 0)
			any = &cfg->ns[i];
	}
	return any;
}

const char *config_sio_namespace(const struct config *cfg, const char *nsp, size_t len)
{
	for (size_t i = 0; i < cfg->nsio_nsps; i++) {
		const char *name = cfg->sio_nsps[i].nsp;
		if (strncmp(name, nsp, len) == 0 && name[len] == '\0')
			return cfg->sio_nsps[i].ns;
	}
	return NULL;
}

bool config_origin_allowed(const struct config *cfg, const char *origin, size_t len)
{
	for (size_t i = 0; i < cfg->nallowed_origins; i++) {
		const char *o = cfg->allowed_origins[i];
		if (strcmp(o, "*") == 0)
			return true;
		/* Scheme and host are case-insensitive (RFC 6454 §4). */
		if (origin != NULL && strlen(o) == len && strncasecmp(o, origin, len) == 0)
			return true;
	}
	return false;
}
