/* test_config.c -- unit tests for config.c: defaults, every kind of value,
 * environment overrides, namespaces, errors with line numbers, lookups, and
 * the sample etc/herald.conf. */

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "test.h"

/* Every top-level key, as the sample must document it. */
static const char *const top_keys[] = {
	"listen", "admin_listen", "workers", "database", "durability", "api_key",
	"jwt_secret", "jwt_public_key", "jwt_issuer", "jwt_audience", "jwt_leeway",
	"allow_anonymous", "allowed_origins", "echo", "log_level", "log_file",
	"max_connections", "max_connections_per_ip", "max_connections_per_user",
	"max_rooms_per_connection", "max_message_size", "max_body_size",
	"max_header_size", "max_headers", "max_json_depth", "send_queue_max",
	"rate_per_sec", "rate_burst", "handshake_timeout", "auth_timeout",
	"token_grace", "ping_interval", "ping_timeout", "replay_limit",
	"shutdown_timeout", "cluster_redis", "node_role", "node_name", "node_api_url",
};

/* ---------------------------------------------------------------- helpers */

/* The file most recently written by load_text, removed by the next call. */
static char conf_path[64];

static void unset_env(void)
{
	char name[64];

	for (size_t i = 0; i < sizeof(top_keys) / sizeof(top_keys[0]); i++) {
		size_t j = 0;
		j += (size_t)snprintf(name, sizeof(name), "HERALD_");
		for (const char *c = top_keys[i]; *c; c++)
			name[j++] = (char)(*c >= 'a' && *c <= 'z' ? *c - 32 : *c);
		name[j] = '\0';
		unsetenv(name);
	}
}

static void write_file(const char *text, size_t len)
{
	if (conf_path[0])
		unlink(conf_path);
	snprintf(conf_path, sizeof(conf_path), "/tmp/herald-test-conf-XXXXXX");
	int fd = mkstemp(conf_path);
	if (fd < 0 || write(fd, text, len) != (ssize_t)len) {
		perror("write_file");
		exit(1);
	}
	close(fd);
}

/* Writes text to a temporary file and loads it. */
static int load_text(const char *text, struct config *cfg, char *err, size_t errlen)
{
	write_file(text, strlen(text));
	err[0] = '\0';
	return config_load(cfg, conf_path, err, errlen);
}

/* Expects text to be refused with "FILE:want..." in the message, and cfg
 * left with nothing to free. */
static void check_error(const char *text, const char *want, int line)
{
	struct config cfg;
	char err[512], prefix[600];
	int r = load_text(text, &cfg, err, sizeof(err));

	snprintf(prefix, sizeof(prefix), "%s:%s", conf_path, want);
	test_checks++;
	if (r != -1 || strncmp(err, prefix, strlen(prefix)) != 0) {
		test_failures++;
		fprintf(stderr, "%s:%d: load returned %d \"%s\", expected \"%s\"\n", __FILE__, line,
			r, err, prefix);
	}
	CHECK(cfg.ns == NULL && cfg.listen == NULL && cfg.path == NULL);
	if (r == 0)
		config_free(&cfg);
}
#define CHECK_ERROR(text, want) check_error((text), (want), __LINE__)

static const struct ns_config *ns_named(const struct config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->nns; i++) {
		if (strcmp(cfg->ns[i].name, name) == 0)
			return &cfg->ns[i];
	}
	return NULL;
}

static bool has_role(const struct acl_rule *r, const char *role)
{
	for (size_t i = 0; i < r->nroles; i++) {
		if (strcmp(r->roles[i], role) == 0)
			return true;
	}
	return false;
}

static bool origin_ok(const struct config *cfg, const char *o)
{
	return config_origin_allowed(cfg, o, strlen(o));
}

static const char *ns_of(const struct config *cfg, const char *room)
{
	const struct ns_config *ns = config_namespace(cfg, room);
	return ns ? ns->name : "(none)";
}

static int cpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n < 1 ? 1 : n > 64 ? 64 : (int)n;
}

/* ---------------------------------------------------------------- tests */

static void test_defaults(void)
{
	struct config cfg;
	char err[256] = "";

	CHECK_EQ_INT(config_load(&cfg, NULL, err, sizeof(err)), 0);
	CHECK(cfg.path == NULL);
	CHECK_EQ_STR(cfg.listen, "0.0.0.0:8080");
	CHECK_EQ_STR(cfg.admin_listen, "127.0.0.1:8081");
	CHECK_EQ_INT(cfg.workers, cpus());
	CHECK_EQ_STR(cfg.database, "./var/herald.db");
	CHECK(!cfg.durability_full);
	CHECK(cfg.api_key == NULL);
	CHECK(cfg.jwt_secret == NULL);
	CHECK(cfg.jwt_public_key == NULL);
	CHECK(cfg.jwt_issuer == NULL);
	CHECK(cfg.jwt_audience == NULL);
	CHECK_EQ_INT(cfg.jwt_leeway, 30);
	CHECK(cfg.allow_anonymous);
	CHECK_EQ_INT(cfg.nallowed_origins, 1);
	CHECK_EQ_STR(cfg.allowed_origins[0], "*");
	CHECK(!cfg.echo);
	CHECK_EQ_INT(cfg.log_level, LOG_INFO);
	CHECK(cfg.log_file == NULL);
	CHECK_EQ_INT(cfg.max_connections, 100000);
	CHECK_EQ_INT(cfg.max_connections_per_ip, 1000);
	CHECK_EQ_INT(cfg.max_connections_per_user, 20);
	CHECK_EQ_INT(cfg.max_rooms_per_connection, 100);
	CHECK_EQ_INT(cfg.max_message_size, 65536);
	CHECK_EQ_INT(cfg.max_body_size, 1048576);
	CHECK_EQ_INT(cfg.max_header_size, 8192);
	CHECK_EQ_INT(cfg.max_headers, 64);
	CHECK_EQ_INT(cfg.max_json_depth, 32);
	CHECK_EQ_INT(cfg.send_queue_max, 4194304);
	CHECK_EQ_INT(cfg.rate_per_sec, 50);
	CHECK_EQ_INT(cfg.rate_burst, 100);
	CHECK_EQ_INT(cfg.handshake_timeout, 10);
	CHECK_EQ_INT(cfg.auth_timeout, 10);
	CHECK_EQ_INT(cfg.token_grace, 5);
	CHECK_EQ_INT(cfg.ping_interval, 25);
	CHECK_EQ_INT(cfg.ping_timeout, 60);
	CHECK_EQ_INT(cfg.replay_limit, 10000);
	CHECK_EQ_INT(cfg.shutdown_timeout, 10);

	/* The built-in namespaces. */
	CHECK_EQ_INT(cfg.nns, 5);
	static const struct { const char *name; unsigned flags; const char *role; } b[] = {
		{ "user", ACL_OWNER, NULL },
		{ "global", ACL_PUBLIC, NULL },
		{ "workflow", ACL_AUTHENTICATED, NULL },
		{ "workflows", ACL_ROLE, "admin" },
		{ "admin", ACL_ROLE, "admin" },
	};
	for (size_t i = 0; i < sizeof(b) / sizeof(b[0]); i++) {
		const struct ns_config *ns = ns_named(&cfg, b[i].name);
		CHECK(ns != NULL);
		if (ns == NULL)
			continue;
		CHECK_EQ_INT(ns->subscribe.flags, b[i].flags);
		CHECK(b[i].role == NULL || has_role(&ns->subscribe, b[i].role));
		CHECK_EQ_INT(ns->publish.flags, ACL_API);
		CHECK_EQ_INT(ns->history_size, 1000);
		CHECK_EQ_INT(ns->history_ttl, 86400);
		CHECK_EQ_INT(ns->throttle_ms, 0);
	}
	config_free(&cfg);
	CHECK(cfg.ns == NULL && cfg.listen == NULL);
	/* Freeing twice, or a zeroed config, is harmless. */
	config_free(&cfg);

	/* An empty file gives the same. */
	CHECK_EQ_INT(load_text("", &cfg, err, sizeof(err)), 0);
	CHECK_EQ_STR(cfg.path, conf_path);
	CHECK_EQ_INT(cfg.nns, 5);
	CHECK_EQ_INT(cfg.ping_timeout, 60);
	config_free(&cfg);
}

static void test_every_value(void)
{
	struct config cfg;
	char err[256] = "";
	const char *text =
		"# a comment\n"
		"; another comment\n"
		"   # an indented comment\n"
		"\n"
		"listen = 127.0.0.1:9000\n"
		"admin_listen=127.0.0.1:9001\n"
		"workers = 3   # trailing comment\n"
		"database = /tmp/x y/herald.db\n"
		"durability = full\n"
		"api_key = k#not-a-comment\n"
		"jwt_secret = s3cret\t# tab before the comment\n"
		"jwt_public_key = MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n"
		"jwt_issuer = https://issuer.example\n"
		"jwt_audience = herald\n"
		"jwt_leeway = 0\n"
		"allow_anonymous = No\n"
		"allowed_origins = https://a.example,https://b.example  http://c.example:8080\n"
		"echo = on\n"
		"log_level = debug\n"
		"log_file = /var/log/herald.log\n"
		"max_connections = 5\n"
		"max_connections_per_ip = 6\n"
		"max_connections_per_user = 7\n"
		"max_rooms_per_connection = 8\n"
		"max_message_size = 16k\n"
		"max_body_size = 2M\n"
		"max_header_size = 4K\n"
		"max_headers = 10\n"
		"max_json_depth = 11\n"
		"send_queue_max = 1m\n"
		"rate_per_sec = 12\n"
		"rate_burst = 13\n"
		"handshake_timeout = 14\n"
		"auth_timeout = 15\n"
		"token_grace = 0\n"
		"ping_interval = 17\n"
		"ping_timeout = 18\n"
		"replay_limit = 0\n"
		"shutdown_timeout = 20\n"
		"\t  rate_burst\t=\t21  \n"           /* repeated: the last one wins */
		"[general]\n"
		"echo = off\n";

	CHECK_EQ_INT(load_text(text, &cfg, err, sizeof(err)), 0);
	CHECK_EQ_STR(err, "");
	CHECK_EQ_STR(cfg.listen, "127.0.0.1:9000");
	CHECK_EQ_STR(cfg.admin_listen, "127.0.0.1:9001");
	CHECK_EQ_INT(cfg.workers, 3);
	CHECK_EQ_STR(cfg.database, "/tmp/x y/herald.db");
	CHECK(cfg.durability_full);
	CHECK_EQ_STR(cfg.api_key, "k#not-a-comment");
	CHECK_EQ_STR(cfg.jwt_secret, "s3cret");
	CHECK_EQ_STR(cfg.jwt_public_key, "MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=");
	CHECK_EQ_STR(cfg.jwt_issuer, "https://issuer.example");
	CHECK_EQ_STR(cfg.jwt_audience, "herald");
	CHECK_EQ_INT(cfg.jwt_leeway, 0);
	CHECK(!cfg.allow_anonymous);
	CHECK_EQ_INT(cfg.nallowed_origins, 3);
	if (cfg.nallowed_origins == 3) {
		CHECK_EQ_STR(cfg.allowed_origins[0], "https://a.example");
		CHECK_EQ_STR(cfg.allowed_origins[1], "https://b.example");
		CHECK_EQ_STR(cfg.allowed_origins[2], "http://c.example:8080");
	}
	CHECK(!cfg.echo);
	CHECK_EQ_INT(cfg.log_level, LOG_DEBUG);
	CHECK_EQ_STR(cfg.log_file, "/var/log/herald.log");
	CHECK_EQ_INT(cfg.max_connections, 5);
	CHECK_EQ_INT(cfg.max_connections_per_ip, 6);
	CHECK_EQ_INT(cfg.max_connections_per_user, 7);
	CHECK_EQ_INT(cfg.max_rooms_per_connection, 8);
	CHECK_EQ_INT(cfg.max_message_size, 16384);
	CHECK_EQ_INT(cfg.max_body_size, 2 * 1048576);
	CHECK_EQ_INT(cfg.max_header_size, 4096);
	CHECK_EQ_INT(cfg.max_headers, 10);
	CHECK_EQ_INT(cfg.max_json_depth, 11);
	CHECK_EQ_INT(cfg.send_queue_max, 1048576);
	CHECK_EQ_INT(cfg.rate_per_sec, 12);
	CHECK_EQ_INT(cfg.rate_burst, 21);
	CHECK_EQ_INT(cfg.handshake_timeout, 14);
	CHECK_EQ_INT(cfg.auth_timeout, 15);
	CHECK_EQ_INT(cfg.token_grace, 0);
	CHECK_EQ_INT(cfg.ping_interval, 17);
	CHECK_EQ_INT(cfg.ping_timeout, 18);
	CHECK_EQ_INT(cfg.replay_limit, 0);
	CHECK_EQ_INT(cfg.shutdown_timeout, 20);
	config_free(&cfg);

	/* CR LF line endings, a BOM, and empty optional values. */
	CHECK_EQ_INT(load_text("\xef\xbb\xbfworkers = 2\r\nlog_file =\r\napi_key = \r\n"
			       "log_level = error\r\n", &cfg, err, sizeof(err)), 0);
	CHECK_EQ_INT(cfg.workers, 2);
	CHECK(cfg.log_file == NULL);
	CHECK(cfg.api_key == NULL);
	CHECK_EQ_INT(cfg.log_level, LOG_ERROR);
	config_free(&cfg);

	/* Words are case-insensitive. */
	CHECK_EQ_INT(load_text("log_level = WARN\ndurability = Full\nworkers = AUTO\n",
			       &cfg, err, sizeof(err)), 0);
	CHECK_EQ_INT(cfg.log_level, LOG_WARN);
	CHECK(cfg.durability_full);
	CHECK_EQ_INT(cfg.workers, cpus());
	config_free(&cfg);

	/* An empty origin list allows no origin. */
	CHECK_EQ_INT(load_text("allowed_origins =\n", &cfg, err, sizeof(err)), 0);
	CHECK_EQ_INT(cfg.nallowed_origins, 0);
	CHECK(!origin_ok(&cfg, "https://a.example"));
	config_free(&cfg);
}

static void test_bools_and_numbers(void)
{
	static const struct { const char *v; bool want; } bools[] = {
		{ "yes", true }, { "YES", true }, { "on", true }, { "On", true }, { "true", true },
		{ "TRUE", true }, { "1", true }, { "no", false }, { "off", false },
		{ "OFF", false }, { "false", false }, { "0", false },
	};
	struct config cfg;
	char err[256], text[128];

	for (size_t i = 0; i < sizeof(bools) / sizeof(bools[0]); i++) {
		snprintf(text, sizeof(text), "echo = %s\nallow_anonymous = %s\n", bools[i].v, bools[i].v);
		CHECK_EQ_INT(load_text(text, &cfg, err, sizeof(err)), 0);
		CHECK_EQ_INT(cfg.echo, bools[i].want);
		CHECK_EQ_INT(cfg.allow_anonymous, bools[i].want);
		config_free(&cfg);
	}

	static const struct { const char *v; long long want; } sizes[] = {
		{ "1", 1 }, { "1k", 1024 }, { "1K", 1024 }, { "64k", 65536 }, { "1m", 1048576 },
		{ "3M", 3145728 }, { "1024m", 1073741824 }, { "007", 7 },
	};
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		snprintf(text, sizeof(text), "max_message_size = %s\n", sizes[i].v);
		CHECK_EQ_INT(load_text(text, &cfg, err, sizeof(err)), 0);
		CHECK_EQ_INT(cfg.max_message_size, sizes[i].want);
		config_free(&cfg);
	}

	/* workers */
	CHECK_EQ_INT(load_text("workers = auto\n", &cfg, err, sizeof(err)), 0);
	CHECK_EQ_INT(cfg.workers, cpus());
	config_free(&cfg);
	CHECK_EQ_INT(load_text("workers = 64\n", &cfg, err, sizeof(err)), 0);
	CHECK_EQ_INT(cfg.workers, 64);
	config_free(&cfg);
	CHECK_EQ_INT(load_text("workers = 1\n", &cfg, err, sizeof(err)), 0);
	CHECK_EQ_INT(cfg.workers, 1);
	config_free(&cfg);

	/* Integer limits at their edges. */
	CHECK_EQ_INT(load_text("max_headers = 1\n", &cfg, err, sizeof(err)), 0);
	CHECK_EQ_INT(cfg.max_headers, 1);
	config_free(&cfg);
	CHECK_EQ_INT(load_text("max_connections_per_ip = 2147483647\n", &cfg, err, sizeof(err)), 0);
	CHECK_EQ_INT(cfg.max_connections_per_ip, 2147483647);
	config_free(&cfg);
}

static void test_value_errors(void)
{
	CHECK_ERROR("max_headers = abc\n", "1: bad value 'abc' for max_headers");
	CHECK_ERROR("\nmax_headers = 65\n", "2: bad value '65' for max_headers");
	CHECK_ERROR("max_headers = 0\n", "1: bad value '0'");
	CHECK_ERROR("max_headers = -1\n", "1: bad value '-1'");
	CHECK_ERROR("max_headers = 1.5\n", "1: bad value '1.5'");
	CHECK_ERROR("max_headers = 10k\n", "1: bad value '10k'");   /* no suffix on counts */
	CHECK_ERROR("max_headers =\n", "1: bad value ''");
	CHECK_ERROR("max_headers = 0x10\n", "1: bad value '0x10'");
	CHECK_ERROR("max_connections_per_ip = 2147483648\n", "1: bad value");
	CHECK_ERROR("replay_limit = 99999999999999999999999\n", "1: bad value");
	CHECK_ERROR("max_message_size = 1g\n", "1: bad value '1g'");
	CHECK_ERROR("max_message_size = k\n", "1: bad value 'k'");
	CHECK_ERROR("max_message_size = 1kk\n", "1: bad value '1kk'");
	CHECK_ERROR("max_message_size = 0\n", "1: bad value '0'");
	CHECK_ERROR("max_message_size = 2048m\n", "1: bad value '2048m'");
	CHECK_ERROR("max_message_size = 9999999999999999m\n", "1: bad value");
	CHECK_ERROR("max_header_size = 100\n", "1: bad value '100'");
	CHECK_ERROR("workers = 0\n", "1: bad value '0' for workers");
	CHECK_ERROR("workers = 65\n", "1: bad value '65' for workers");
	CHECK_ERROR("workers = many\n", "1: bad value 'many' for workers");
	CHECK_ERROR("echo = maybe\n", "1: bad value 'maybe' for echo");
	CHECK_ERROR("allow_anonymous = \n", "1: bad value '' for allow_anonymous");
	CHECK_ERROR("durability = fast\n", "1: bad value 'fast' for durability");
	CHECK_ERROR("log_level = verbose\n", "1: bad value 'verbose' for log_level");
	CHECK_ERROR("log_level = debugdebugdebugdebug\n", "1: bad value 'debugdebugdebugdebug'");
	CHECK_ERROR("listen = nowhere\n", "1: bad address 'nowhere' for listen");
	CHECK_ERROR("admin_listen = 127.0.0.1\n", "1: bad address");
	CHECK_ERROR("listen = 127.0.0.1:99999\n", "1: bad address");
	CHECK_ERROR("database =\n", "1: database must not be empty");
	CHECK_ERROR("allowed_origins = https://a.example/\n", "1: allowed_origins:");
	CHECK_ERROR("ping_interval = 30\nping_timeout = 30\n",
		    " ping_timeout (30) must be greater than ping_interval (30)");
	CHECK_ERROR("listen = 0.0.0.0:9000\nadmin_listen = 127.0.0.1:9000\n",
		    " listen (0.0.0.0:9000) and admin_listen (127.0.0.1:9000) use the same port");
	CHECK_ERROR("listen = 127.0.0.1:9000\nadmin_listen = 127.0.0.1:9000\n", " listen");
}

static void test_syntax_errors(void)
{
	/* The integration suite's own check: unknown key, on line 2. */
	CHECK_ERROR("listen = 127.0.0.1:1\nno_such_key = 1\n", "2: unknown key 'no_such_key'");
	CHECK_ERROR("# comment\n\n; comment\n  \nbogus = 1\n", "5: unknown key 'bogus'");
	CHECK_ERROR("Listen = 127.0.0.1:1\n", "1: unknown key 'Listen'");
	CHECK_ERROR("just words\n", "1: expected 'key = value'");
	CHECK_ERROR(" = 5\n", "1: missing key");
	CHECK_ERROR("[namspace x]\n", "1: unknown section '[namspace x]'");
	CHECK_ERROR("[namespace]\n", "1: unknown section '[namespace]'");
	CHECK_ERROR("[namespace ]\n", "1: unknown section");
	CHECK_ERROR("[namespacex y]\n", "1: unknown section");
	CHECK_ERROR("[]\n", "1: unknown section '[]'");
	CHECK_ERROR("[general\n", "1: bad section header '[general'");
	CHECK_ERROR("[namespace race] extra\n", "1: bad section header");
	CHECK_ERROR("[namespace bad:name]\n", "1: bad namespace name 'bad:name'");
	CHECK_ERROR("[namespace a b]\n", "1: bad namespace name 'a b'");
	CHECK_ERROR("[namespace r*]\n", "1: bad namespace name 'r*'");
	CHECK_ERROR("[namespace race]\nsubscribe = everyone\n",
		    "2: bad subscribe rule: unknown term 'everyone'");
	CHECK_ERROR("[namespace race]\nsubscribe = public\npublish = role:\n",
		    "3: bad publish rule: empty role name in 'role:'");
	CHECK_ERROR("[namespace race]\nsubscribe =\n", "2: bad subscribe rule: empty rule");
	CHECK_ERROR("[namespace race]\nsubscribe = public,\n", "2: bad subscribe rule: empty term in 'public,'");
	CHECK_ERROR("\n[namespace race]\nhistory_size = 10\n",
		    "2: namespace 'race' has no subscribe rule");
	CHECK_ERROR("[namespace race]\n[namespace odds]\nsubscribe = public\n",
		    "1: namespace 'race' has no subscribe rule");
	CHECK_ERROR("[namespace race]\nsubscribe = public\n\n[namespace race]\nsubscribe = public\n",
		    "4: namespace 'race' defined twice");
	CHECK_ERROR("[namespace race]\nsubscribe = public\nlisten = 127.0.0.1:5\n",
		    "3: unknown key 'listen' in [namespace race]");
	CHECK_ERROR("[namespace race]\nsubscribe = public\nhistory_size = -1\n",
		    "3: bad value '-1' for history_size");
	CHECK_ERROR("[namespace race]\nsubscribe = public\nthrottle_ms = soon\n",
		    "3: bad value 'soon' for throttle_ms");
	CHECK_ERROR("[namespace race]\nsubscribe = public\n[general]\nhistory_size = 1\n",
		    "4: unknown key 'history_size'");

	/* A NUL byte in a line. */
	struct config cfg;
	char err[512], want[600];
	write_file("echo = on\nx\0y = 1\n", 18);
	CHECK_EQ_INT(config_load(&cfg, conf_path, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s:2: NUL byte", conf_path);
	CHECK(strncmp(err, want, strlen(want)) == 0);

	/* A file that is not there. */
	CHECK_EQ_INT(config_load(&cfg, "/nonexistent/herald.conf", err, sizeof(err)), -1);
	CHECK(strncmp(err, "/nonexistent/herald.conf: ", 26) == 0);
	CHECK(cfg.path == NULL && cfg.ns == NULL);

	/* A message cut short by a small buffer is still terminated. */
	char tiny[8];
	CHECK_EQ_INT(load_text("bogus = 1\n", &cfg, tiny, sizeof(tiny)), -1);
	CHECK_EQ_INT(strlen(tiny), 7);
}

static void test_env(void)
{
	struct config cfg;
	char err[256];

	setenv("HERALD_JWT_SECRET", "from-env", 1);
	setenv("HERALD_LISTEN", "127.0.0.1:7000", 1);
	setenv("HERALD_WORKERS", "5", 1);
	setenv("HERALD_ECHO", "yes", 1);
	setenv("HERALD_MAX_BODY_SIZE", "2k", 1);
	setenv("HERALD_ALLOWED_ORIGINS", "https://x.example", 1);
	setenv("HERALD_API_KEY", "", 1);
	CHECK_EQ_INT(load_text("jwt_secret = from-file\nlisten = 127.0.0.1:6000\nworkers = 2\n"
			       "api_key = file-key\nlog_level = warn\n", &cfg, err, sizeof(err)), 0);
	CHECK_EQ_STR(cfg.jwt_secret, "from-env");
	CHECK_EQ_STR(cfg.listen, "127.0.0.1:7000");
	CHECK_EQ_INT(cfg.workers, 5);
	CHECK(cfg.echo);
	CHECK_EQ_INT(cfg.max_body_size, 2048);
	CHECK(cfg.api_key == NULL);                    /* set but empty: unset */
	CHECK_EQ_INT(cfg.log_level, LOG_WARN);         /* not overridden */
	CHECK(origin_ok(&cfg, "https://x.example"));
	CHECK(!origin_ok(&cfg, "https://y.example"));
	config_free(&cfg);

	/* Without a file too. */
	CHECK_EQ_INT(config_load(&cfg, NULL, err, sizeof(err)), 0);
	CHECK_EQ_STR(cfg.jwt_secret, "from-env");
	config_free(&cfg);
	unset_env();

	/* A bad value names the variable. */
	setenv("HERALD_WORKERS", "lots", 1);
	CHECK_EQ_INT(load_text("workers = 2\n", &cfg, err, sizeof(err)), -1);
	CHECK(strncmp(err, "HERALD_WORKERS: bad value 'lots' for workers", 44) == 0);
	CHECK(cfg.ns == NULL && cfg.listen == NULL);
	unset_env();

	/* Overrides are checked with the rest: this pair is invalid. */
	setenv("HERALD_PING_INTERVAL", "90", 1);
	CHECK_EQ_INT(config_load(&cfg, NULL, err, sizeof(err)), -1);
	CHECK(strstr(err, "ping_timeout (60) must be greater than ping_interval (90)") != NULL);
	unset_env();

	/* Namespace keys are not environment variables. */
	setenv("HERALD_THROTTLE_MS", "5", 1);
	CHECK_EQ_INT(config_load(&cfg, NULL, err, sizeof(err)), 0);
	config_free(&cfg);
	unsetenv("HERALD_THROTTLE_MS");
}

static void test_namespaces(void)
{
	struct config cfg;
	char err[256] = "";
	const struct ns_config *ns;
	const char *text =
		"workers = 1\n"
		"[namespace race]\n"
		"subscribe = public\n"
		"throttle_ms = 1000\n"
		"history_size = 0   # keep none\n"
		"\n"
		"[namespace order]\n"
		"subscribe = owner, claim\n"
		"publish = role:ops,role:admin\n"
		"history_ttl = 0\n"
		"[ namespace\tuser ]\n"
		"history_size = 50\n"
		"[namespace global]\n"
		"subscribe = authenticated\n"
		"publish = authenticated\n"
		"[namespace a.b-c_d@e]\n"
		"subscribe = public\n"
		"[general]\n"
		"echo = on\n";

	CHECK_EQ_INT(load_text(text, &cfg, err, sizeof(err)), 0);
	CHECK_EQ_STR(err, "");
	CHECK(cfg.echo);
	/* race, order, user, global, a.b-c_d@e, then workflow, workflows, admin */
	CHECK_EQ_INT(cfg.nns, 8);

	ns = ns_named(&cfg, "race");
	CHECK(ns != NULL);
	if (ns) {
		CHECK_EQ_INT(ns->subscribe.flags, ACL_PUBLIC);
		CHECK_EQ_INT(ns->publish.flags, ACL_API);
		CHECK_EQ_INT(ns->throttle_ms, 1000);
		CHECK_EQ_INT(ns->history_size, 0);
		CHECK_EQ_INT(ns->history_ttl, 86400);
	}
	ns = ns_named(&cfg, "order");
	CHECK(ns != NULL);
	if (ns) {
		CHECK_EQ_INT(ns->subscribe.flags, ACL_OWNER | ACL_CLAIM);
		CHECK_EQ_INT(ns->publish.flags, ACL_ROLE);
		CHECK_EQ_INT(ns->publish.nroles, 2);
		CHECK(has_role(&ns->publish, "ops") && has_role(&ns->publish, "admin"));
		CHECK_EQ_INT(ns->history_size, 1000);
		CHECK_EQ_INT(ns->history_ttl, 0);
		CHECK_EQ_INT(ns->throttle_ms, 0);
	}
	/* A redefined built-in keeps its rule unless the file changes it. */
	ns = ns_named(&cfg, "user");
	CHECK(ns != NULL);
	if (ns) {
		CHECK_EQ_INT(ns->subscribe.flags, ACL_OWNER);
		CHECK_EQ_INT(ns->publish.flags, ACL_API);
		CHECK_EQ_INT(ns->history_size, 50);
	}
	ns = ns_named(&cfg, "global");
	CHECK(ns != NULL);
	if (ns) {
		CHECK_EQ_INT(ns->subscribe.flags, ACL_AUTHENTICATED);
		CHECK_EQ_INT(ns->publish.flags, ACL_AUTHENTICATED);
	}
	CHECK(ns_named(&cfg, "a.b-c_d@e") != NULL);
	ns = ns_named(&cfg, "workflows");
	CHECK(ns != NULL && ns->subscribe.flags == ACL_ROLE && has_role(&ns->subscribe, "admin"));
	ns = ns_named(&cfg, "workflow");
	CHECK(ns != NULL && ns->subscribe.flags == ACL_AUTHENTICATED);
	ns = ns_named(&cfg, "admin");
	CHECK(ns != NULL && ns->subscribe.flags == ACL_ROLE && has_role(&ns->subscribe, "admin"));
	config_free(&cfg);

	/* The same rule text later in a section replaces the earlier one. */
	CHECK_EQ_INT(load_text("[namespace x]\nsubscribe = role:a\nsubscribe = role:b\n",
			       &cfg, err, sizeof(err)), 0);
	ns = ns_named(&cfg, "x");
	CHECK(ns != NULL && ns->subscribe.nroles == 1 && has_role(&ns->subscribe, "b"));
	config_free(&cfg);
}

static void test_namespace_lookup(void)
{
	struct config cfg;
	char err[256];

	CHECK_EQ_INT(load_text("[namespace race]\nsubscribe = public\n"
			       "[namespace race2]\nsubscribe = public\n", &cfg, err, sizeof(err)), 0);
	CHECK_EQ_STR(ns_of(&cfg, "race:42"), "race");
	CHECK_EQ_STR(ns_of(&cfg, "race:"), "race");
	CHECK_EQ_STR(ns_of(&cfg, "race"), "race");
	CHECK_EQ_STR(ns_of(&cfg, "race:1:2"), "race");
	CHECK_EQ_STR(ns_of(&cfg, "race2:1"), "race2");
	CHECK_EQ_STR(ns_of(&cfg, "global"), "global");
	CHECK_EQ_STR(ns_of(&cfg, "user:alice"), "user");
	CHECK_EQ_STR(ns_of(&cfg, "workflow:7"), "workflow");
	CHECK_EQ_STR(ns_of(&cfg, "workflows"), "workflows");
	CHECK_EQ_STR(ns_of(&cfg, "admin"), "admin");
	/* No prefix matches, and no catch-all. */
	CHECK(config_namespace(&cfg, "racing:1") == NULL);
	CHECK(config_namespace(&cfg, "rac:1") == NULL);
	CHECK(config_namespace(&cfg, "Race:1") == NULL);
	CHECK(config_namespace(&cfg, "users:1") == NULL);
	CHECK(config_namespace(&cfg, "market:1") == NULL);
	CHECK(config_namespace(&cfg, ":1") == NULL);
	CHECK(config_namespace(&cfg, "") == NULL);
	CHECK(config_namespace(&cfg, NULL) == NULL);
	config_free(&cfg);

	/* With a "*" namespace, unknown rooms fall to it. */
	CHECK_EQ_INT(load_text("[namespace *]\nsubscribe = authenticated\nhistory_size = 7\n"
			       "[namespace race]\nsubscribe = public\n", &cfg, err, sizeof(err)), 0);
	CHECK_EQ_STR(ns_of(&cfg, "race:1"), "race");
	CHECK_EQ_STR(ns_of(&cfg, "global"), "global");
	CHECK_EQ_STR(ns_of(&cfg, "market:1"), "*");
	CHECK_EQ_STR(ns_of(&cfg, "racing:1"), "*");
	CHECK_EQ_STR(ns_of(&cfg, "lobby"), "*");
	CHECK_EQ_INT(config_namespace(&cfg, "x:y")->history_size, 7);
	config_free(&cfg);
}

static void test_socketio_namespaces(void)
{
	struct config cfg;
	char err[256];

	/* Spaces and empty items are fine; a namespace under "*" exists. */
	CHECK_EQ_INT(load_text("socketio_namespaces = /orders = order ,, /live/eu=stream,\n"
			       "[namespace order]\nsubscribe = public\n"
			       "[namespace *]\nsubscribe = public\n", &cfg, err, sizeof(err)), 0);
	CHECK_EQ_INT(cfg.nsio_nsps, 2);
	CHECK_EQ_STR(config_sio_namespace(&cfg, "/orders", 7), "order");
	CHECK_EQ_STR(config_sio_namespace(&cfg, "/live/eu,x", 8), "stream");
	CHECK(config_sio_namespace(&cfg, "/order", 6) == NULL);
	CHECK(config_sio_namespace(&cfg, "/", 1) == NULL);
	config_free(&cfg);
	CHECK_EQ_INT(load_text("", &cfg, err, sizeof(err)), 0);
	CHECK_EQ_INT(cfg.nsio_nsps, 0);
	config_free(&cfg);
	/* Without "*", only declared and built-in namespaces. */
	CHECK_EQ_INT(load_text("socketio_namespaces = /w=workflow\n", &cfg, err, sizeof(err)), 0);
	config_free(&cfg);
	CHECK_ERROR("socketio_namespaces = /s=stream\n", " socketio_namespaces: /s=stream: no "
		    "namespace 'stream'");
}

static void test_origins(void)
{
	struct config cfg;
	char err[256];

	CHECK_EQ_INT(config_load(&cfg, NULL, err, sizeof(err)), 0);
	CHECK(origin_ok(&cfg, "https://anything.example"));
	CHECK(origin_ok(&cfg, "null"));
	CHECK(origin_ok(&cfg, ""));
	config_free(&cfg);

	CHECK_EQ_INT(load_text("allowed_origins = https://app.example, https://admin.example\n",
			       &cfg, err, sizeof(err)), 0);
	CHECK(origin_ok(&cfg, "https://app.example"));
	CHECK(origin_ok(&cfg, "https://admin.example"));
	CHECK(origin_ok(&cfg, "HTTPS://App.Example"));
	CHECK(!origin_ok(&cfg, "https://evil.example"));
	CHECK(!origin_ok(&cfg, "https://app.example.evil"));
	CHECK(!origin_ok(&cfg, "https://app.exampl"));
	CHECK(!origin_ok(&cfg, "http://app.example"));
	CHECK(!origin_ok(&cfg, "https://app.example:443"));
	CHECK(!origin_ok(&cfg, "null"));
	CHECK(!origin_ok(&cfg, ""));
	CHECK(!origin_ok(&cfg, "*"));
	/* The length given counts, not a NUL. */
	CHECK(config_origin_allowed(&cfg, "https://app.example.evil", 19));
	CHECK(!config_origin_allowed(&cfg, "https://app.example", 18));
	config_free(&cfg);

	/* "*" anywhere in the list allows all. */
	CHECK_EQ_INT(load_text("allowed_origins = https://app.example *\n", &cfg, err, sizeof(err)), 0);
	CHECK(origin_ok(&cfg, "https://other.example"));
	config_free(&cfg);
}

static void test_reload(void)
{
	struct config a, b;
	char err[256];

	/* Two live configurations (the hub swaps them on SIGHUP) share nothing. */
	CHECK_EQ_INT(load_text("max_message_size = 2k\n[namespace race]\nsubscribe = public\n",
			       &a, err, sizeof(err)), 0);
	CHECK_EQ_INT(load_text("max_message_size = 1k\n", &b, err, sizeof(err)), 0);
	CHECK_EQ_INT(a.max_message_size, 2048);
	CHECK_EQ_INT(b.max_message_size, 1024);
	CHECK(ns_named(&a, "race") != NULL);
	CHECK(ns_named(&b, "race") == NULL);
	config_free(&a);
	CHECK_EQ_STR(b.listen, "0.0.0.0:8080");
	config_free(&b);
}

/* etc/herald.conf loads and documents every key. */
static void test_sample(void)
{
	const char *srcdir = getenv("SRCDIR");
	char path[4096], err[512] = "", *text;
	struct config cfg;
	const struct ns_config *ns;
	FILE *f;
	long n;

	snprintf(path, sizeof(path), "%s/etc/herald.conf", srcdir ? srcdir : ".");
	CHECK_EQ_INT(config_load(&cfg, path, err, sizeof(err)), 0);
	CHECK_EQ_STR(err, "");
	CHECK_EQ_STR(cfg.api_key, "dev-api-key");
	CHECK_EQ_STR(cfg.jwt_secret, "dev-secret-change-me");
	CHECK_EQ_STR(cfg.database, "./var/herald.db");
	CHECK(!cfg.echo);
	ns = ns_named(&cfg, "race");
	CHECK(ns != NULL && ns->subscribe.flags == ACL_PUBLIC && ns->throttle_ms == 1000);
	ns = ns_named(&cfg, "market");
	CHECK(ns != NULL && ns->subscribe.flags == ACL_PUBLIC);
	CHECK(ns_named(&cfg, "creator") != NULL);
	ns = ns_named(&cfg, "order");
	CHECK(ns != NULL && ns->subscribe.flags == (ACL_OWNER | ACL_CLAIM));
	CHECK(ns_named(&cfg, "user") != NULL && ns_named(&cfg, "global") != NULL);
	config_free(&cfg);

	f = fopen(path, "r");
	CHECK(f != NULL);
	if (f == NULL)
		return;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	text = calloc(1, (size_t)n + 2);
	text[0] = '\n';
	CHECK_EQ_INT(fread(text + 1, 1, (size_t)n, f), n);
	fclose(f);
	for (size_t i = 0; i < sizeof(top_keys) / sizeof(top_keys[0]); i++) {
		char want[64];
		snprintf(want, sizeof(want), "\n%s =", top_keys[i]);
		if (strstr(text, want) == NULL) {
			snprintf(want, sizeof(want), "\n# %s =", top_keys[i]);
			if (strstr(text, want) == NULL)
				fprintf(stderr, "sample lacks %s\n", top_keys[i]);
		}
		CHECK(strstr(text, want) != NULL);
	}
	static const char *const ns_keys[] = {
		"subscribe =", "publish =", "history_size =", "history_ttl =", "throttle_ms =",
	};
	for (size_t i = 0; i < sizeof(ns_keys) / sizeof(ns_keys[0]); i++)
		CHECK(strstr(text, ns_keys[i]) != NULL);
	free(text);
}

static void test_cluster(void)
{
	struct config cfg;
	char err[512];

	CHECK_EQ_INT(load_text("listen = 10.0.0.2:8080\n", &cfg, err, sizeof(err)), 0);
	CHECK(cfg.cluster_redis == NULL && !cfg.node_edge && cfg.node_name == NULL);
	config_free(&cfg);

	CHECK_EQ_INT(load_text("listen = 10.0.0.2:8080\nadmin_listen = 10.0.0.2:8081\n"
			       "api_key = k\ncluster_redis = redis://10.0.0.5:6380/2\n"
			       "node_role = EDGE\n", &cfg, err, sizeof(err)), 0);
	CHECK(cfg.node_edge);
	CHECK_EQ_STR(cfg.redis_host, "10.0.0.5");
	CHECK_EQ_INT(cfg.redis_port, 6380);
	CHECK_EQ_INT(cfg.redis_db, 2);
	CHECK_EQ_STR(cfg.node_name, "10.0.0.2:8080");
	CHECK_EQ_STR(cfg.node_api_url, "http://10.0.0.2:8081");
	config_free(&cfg);

	CHECK_EQ_INT(load_text("api_key = k\ncluster_redis = redis://localhost:6379\n"
			       "node_name = edge-1\nnode_api_url = http://edge-1:8081\n",
			       &cfg, err, sizeof(err)), 0);
	CHECK(!cfg.node_edge);
	CHECK_EQ_INT(cfg.redis_db, 0);
	CHECK_EQ_STR(cfg.node_name, "edge-1");
	CHECK_EQ_STR(cfg.node_api_url, "http://edge-1:8081");
	config_free(&cfg);

	CHECK_ERROR("node_role = edge\n", " node_role = edge needs cluster_redis");
	CHECK_ERROR("node_role = replica\n", "1: bad value 'replica' for node_role");
	CHECK_ERROR("cluster_redis = redis://h:1\n", " cluster_redis needs api_key");
	static const char *const bad[] = {
		"http://h:1", "redis://h", "redis://:6379", "redis://h:0", "redis://h:65536",
		"redis://h:12x", "redis://h:1/", "redis://h:1/x", "redis://h:1/2/3",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char text[128], want[128];
		snprintf(text, sizeof(text), "api_key = k\ncluster_redis = %s\n", bad[i]);
		snprintf(want, sizeof(want), " cluster_redis (%s) is not redis://HOST:PORT[/DB]", bad[i]);
		CHECK_ERROR(text, want);
	}
}

static void test_cleanup(void)
{
	if (conf_path[0])
		CHECK_EQ_INT(unlink(conf_path), 0);
	conf_path[0] = '\0';
}

static void test_setup(void)
{
	unset_env();
	CHECK(1);
}

TEST_MAIN("config",
	TEST(test_setup),
	TEST(test_defaults),
	TEST(test_every_value),
	TEST(test_bools_and_numbers),
	TEST(test_value_errors),
	TEST(test_syntax_errors),
	TEST(test_env),
	TEST(test_namespaces),
	TEST(test_namespace_lookup),
	TEST(test_socketio_namespaces),
	TEST(test_origins),
	TEST(test_reload),
	TEST(test_sample),
	TEST(test_cluster),
	TEST(test_cleanup))
