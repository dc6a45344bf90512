/* config.h -- the INI configuration file, HERALD_* environment overrides, defaults. */
#ifndef HERALD_CONFIG_H
#define HERALD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "acl.h"
#include "cidr.h"
#include "webhook.h"

struct ns_config {
	char *name;                 /* "race", "user", "*" ... */
	struct acl_rule subscribe;
	struct acl_rule publish;
	int history_size;           /* messages kept per room; 0 = keep none */
	int history_ttl;            /* seconds; 0 = no age limit */
	int throttle_ms;            /* 0 = off */
};

/* One entry of socketio_namespaces: a Socket.IO namespace served as a herald one. */
struct config_sio_nsp {
	char *nsp;                  /* "/orders" */
	char *ns;                   /* "order" */
};

struct config {
	char *path;                 /* file it was read from (NULL: defaults only) */

	/* [general] keys, at top level of the file */
	char *listen;               /* "0.0.0.0:8080" */
	char *admin_listen;         /* "127.0.0.1:8081" */
	int workers;                /* resolved: "auto" = number of CPUs */
	char *database;             /* "./var/herald.db" */
	bool durability_full;       /* durability = full */
	size_t max_database_size;   /* bytes; 0 = only the disk limits it */
	char *api_key;
	char *jwt_secret;           /* HS256 */
	char *jwt_public_key;       /* Ed25519, base64 */
	char *jwt_issuer;           /* checked when set */
	char *jwt_audience;         /* checked when set */
	int jwt_leeway;             /* seconds */
	bool allow_anonymous;
	char **allowed_origins;     /* "*" alone = any */
	size_t nallowed_origins;
	bool echo;
	int log_level;              /* enum log_level */
	char *log_file;             /* NULL: stderr */
	struct cidr_list trusted_proxies; /* peers whose X-Forwarded-For is believed */
	char *dashboard_dir;        /* files of the dashboard served at / on the admin listener */

	/* limits and timers */
	int max_connections;            /* per worker */
	int max_connections_per_ip;
	int max_connections_per_user;
	int max_handshakes;             /* per worker: sockets not yet upgraded */
	int max_handshakes_per_ip;
	int max_rooms_per_connection;
	size_t max_message_size;        /* bytes of one WebSocket message */
	size_t max_body_size;           /* bytes of one HTTP request body */
	size_t max_header_size;         /* bytes of request line + headers */
	int max_headers;
	int max_json_depth;
	size_t send_queue_max;          /* bytes queued per connection */
	int rate_per_sec;               /* client messages per second (token bucket) */
	int rate_burst;
	int handshake_timeout;          /* seconds */
	int auth_timeout;               /* seconds */
	int token_grace;                /* seconds between token_expired and close 4003 */
	int ping_interval;              /* seconds */
	int ping_timeout;               /* seconds */
	int replay_limit;               /* messages */
	int shutdown_timeout;           /* seconds */

	/* Socket.IO (docs/socketio.md) */
	char *socketio_path;            /* "/socket.io/" */
	int socketio_ping_interval;     /* ms */
	int socketio_ping_timeout;      /* ms */
	size_t socketio_max_payload;    /* bytes of one Engine.IO payload */
	bool socketio_recovery;         /* connection state recovery */
	int socketio_recovery_window;   /* seconds */
	char *socketio_alias;           /* "EVENT VERB TEMPLATE, ..." (NULL: none) */
	char *socketio_namespaces;      /* "/NSP=NAMESPACE, ..." as written (NULL: none) */
	struct config_sio_nsp *sio_nsps;    /* socketio_namespaces, checked */
	size_t nsio_nsps;
	bool socketio_test;             /* conformance mode: reference behaviour */

	/* webhooks */
	struct webhook_schedule webhook_retry_schedule;  /* seconds, the last repeating */
	int webhook_timeout_ms;         /* default per-attempt timeout of an endpoint */
	int webhook_concurrency;        /* attempts in flight per endpoint */
	int webhook_max_in_flight;      /* attempts in flight over all endpoints */
	int webhook_breaker_failures;   /* consecutive failures that open the breaker */
	int webhook_breaker_cooldown_ms;/* how long it stays open before a probe */
	int webhook_secret_overlap;     /* seconds the old secret still signs after a rotation */

	/* scale-out (docs/scaling.md) */
	char *cluster_redis;            /* "redis://HOST:PORT[/DB]" (NULL: standalone) */
	bool node_edge;                 /* node_role = edge: a relay in the hub's place */
	char *node_name;                /* resolved: default the client listener's host:port */
	char *node_api_url;             /* resolved: default http:// + admin_listen */
	char *redis_host;               /* parsed from cluster_redis */
	int redis_port, redis_db;

	struct ns_config *ns;
	size_t nns;
};

/* Reads path (may be NULL for defaults), then applies HERALD_* variables from
 * the environment. Returns 0, or -1 with "file:line: message" in err.
 * The built-in namespaces (user, global, workflow, workflows, admin) exist
 * unless the file redefines them. */
int config_load(struct config *cfg, const char *path, char *err, size_t errlen);
void config_free(struct config *cfg);

/* The namespace that governs room (its own, else "*", else NULL). */
const struct ns_config *config_namespace(const struct config *cfg, const char *room);

/* The herald namespace that Socket.IO namespace nsp[0..len) is served as, or
 * NULL when socketio_namespaces does not list it. */
const char *config_sio_namespace(const struct config *cfg, const char *nsp, size_t len);

/* True when origin is allowed by allowed_origins. */
bool config_origin_allowed(const struct config *cfg, const char *origin, size_t len);

#endif
