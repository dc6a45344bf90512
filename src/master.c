/* master.c -- the supervisor process. It forks the hub, the workers and the courier
 * (on an edge the relay in the hub's place, and no courier: the primary sends
 * the webhooks), restarts any child that dies (with backoff), and turns signals into
 * actions: TERM/INT stop gracefully, HUP reloads, USR1 reopens logs.
 * It does no request work and runs no event loop: sigtimedwait is enough. */
#include "master.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <ev.h>
#include <netinet/in.h>

#include "courier.h"
#include "hub.h"
#include "ipc.h"
#include "log.h"
#include "proc.h"
#include "store.h"
#include "util.h"
#include "worker.h"

enum { ROLE_HUB, ROLE_WORKER, ROLE_COURIER };

struct child {
	int role;
	int slot;
	pid_t pid;               /* 0 while down */
	int fd;                  /* master's end of the channel, -1 while down */
	int64_t started;         /* mono_ms */
	int64_t restart_at;      /* mono_ms; 0 = not scheduled */
	int64_t backoff;         /* ms before the next restart */
};

#define BACKOFF_MIN 100
#define BACKOFF_MAX 5000
#define STABLE_MS 10000      /* a child that lived this long restarts without delay */

static struct config *master_cfg;
static struct child *children;
static size_t nchildren;
static int hub_listen_fd = -1;
static char hub_name[64];

static const char *role_name(int role)
{
	static const char *const names[] = { "hub", "worker", "courier" };
	return role == ROLE_HUB && master_cfg->node_edge ? "relay" : names[role];
}

/* ---- master side --------------------------------------------------------- */

static void send_hello(struct child *c)
{
	struct buf b = { 0 };
	size_t m = ipc_begin(&b, IPC_HELLO);
	ipc_put_u32(&b, IPC_VERSION);
	ipc_put_u32(&b, IPC_ROLE_MASTER);
	ipc_put_u32(&b, (uint32_t)c->slot);
	ipc_put_u32(&b, (uint32_t)getpid());
	ipc_end(&b, m);
	if (ipc_write_all(c->fd, &b) < 0)
		log_warn("event=hello_failed role=%s slot=%d", role_name(c->role), c->slot);
	buf_free(&b);
}

static void spawn(struct child *c)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		log_error("event=socketpair_failed error=\"%s\"", strerror(errno));
		c->restart_at = mono_ms() + BACKOFF_MAX;
		return;
	}
	pid_t pid = fork();
	if (pid < 0) {
		log_error("event=fork_failed error=\"%s\"", strerror(errno));
		close(sv[0]);
		close(sv[1]);
		c->restart_at = mono_ms() + BACKOFF_MAX;
		return;
	}
	if (pid == 0) {
		/* Only our own channel stays open, so each child sees EOF when the
		 * master goes, and no child holds another's channel open. */
		for (size_t i = 0; i < nchildren; i++)
			if (children[i].fd >= 0)
				close(children[i].fd);
		close(sv[0]);
		static struct proc_ctx ctx;
		ctx.cfg = master_cfg;
		ctx.slot = c->slot;
		ctx.master_fd = sv[1];
		snprintf(ctx.hub_name, sizeof(ctx.hub_name), "%s", hub_name);
		if (c->role == ROLE_HUB) {
			ctx.hub_listen_fd = hub_listen_fd;
			hub_main(&ctx);
		}
		close(hub_listen_fd);
		ctx.hub_listen_fd = -1;
		if (c->role == ROLE_COURIER)
			courier_main(&ctx);
		worker_main(&ctx);
	}
	close(sv[1]);
	c->pid = pid;
	c->fd = sv[0];
	c->started = mono_ms();
	c->restart_at = 0;
	send_hello(c);
	log_info("event=spawn role=%s slot=%d child=%d", role_name(c->role), c->slot, (int)pid);
}

static void describe_status(int status, char *out, size_t n)
{
	if (WIFEXITED(status))
		snprintf(out, n, "exit_status=%d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(out, n, "signal=%s", strsignal(WTERMSIG(status)));
	else
		snprintf(out, n, "status=%d", status);
}

/* Reaps every dead child; schedules restarts unless stopping. */
static void reap(bool stopping)
{
	int status;
	pid_t pid;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (size_t i = 0; i < nchildren; i++) {
			struct child *c = &children[i];
			if (c->pid != pid)
				continue;
			char how[64];
			describe_status(status, how, sizeof(how));
			close(c->fd);
			c->fd = -1;
			c->pid = 0;
			if (stopping) {
				log_info("event=child_exit role=%s slot=%d child=%d %s",
					 role_name(c->role), c->slot, (int)pid, how);
				break;
			}
			int64_t now = mono_ms();
			if (now - c->started >= STABLE_MS)
				c->backoff = BACKOFF_MIN;
			c->restart_at = now + c->backoff;
			log_warn("event=child_died role=%s slot=%d child=%d %s restart_in_ms=%lld",
				 role_name(c->role), c->slot, (int)pid, how, (long long)c->backoff);
			c->backoff = MIN(c->backoff * 2, BACKOFF_MAX);
			break;
		}
	}
}

static void signal_children(int sig)
{
	for (size_t i = 0; i < nchildren; i++)
		if (children[i].pid > 0)
			kill(children[i].pid, sig);
}

static size_t alive(void)
{
	size_t n = 0;
	for (size_t i = 0; i < nchildren; i++)
		n += children[i].pid > 0;
	return n;
}

/* SIGHUP: check the new file first; children re-read it only when it is valid. */
static void reload(void)
{
	struct config fresh;
	char err[512];
	if (config_load(&fresh, master_cfg->path, err, sizeof(err)) < 0) {
		log_error("event=reload_failed error=\"%s\"", err);
		return;
	}
	if (fresh.workers != master_cfg->workers || strcmp(fresh.listen, master_cfg->listen) ||
	    strcmp(fresh.admin_listen, master_cfg->admin_listen) ||
	    strcmp(fresh.database, master_cfg->database) ||
	    fresh.node_edge != master_cfg->node_edge ||
	    !fresh.cluster_redis != !master_cfg->cluster_redis ||
	    (fresh.cluster_redis && strcmp(fresh.cluster_redis, master_cfg->cluster_redis)))
		log_warn("event=reload_needs_restart keys=\"workers listen admin_listen database "
			 "node_role cluster_redis\"");
	log_set_level((enum log_level)fresh.log_level);
	config_free(&fresh);
	struct buf b = { 0 };
	for (size_t i = 0; i < nchildren; i++) {
		if (children[i].fd < 0)
			continue;
		ipc_end(&b, ipc_begin(&b, IPC_RELOAD));
		if (ipc_write_all(children[i].fd, &b) < 0)
			log_warn("event=reload_send_failed slot=%d", children[i].slot);
		buf_reset(&b);
	}
	buf_free(&b);
	log_info("event=reload");
}

/* Fails early, in the foreground, when an address cannot be bound at all.
 * The socket is bound without listen(), so it never takes connections. */
static void check_bind(const char *addr)
{
	struct sockaddr_in sa;
	if (parse_hostport(addr, &sa) < 0)
		fatal("event=bad_address addr=%s", addr);
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		fatal("event=bind_failed addr=%s error=\"%s\"", addr, strerror(errno));
	close(fd);
}

/* Creates the database directory and the database, migrating it. */
static void prepare_database(const char *path)
{
	char *dir = xstrdup(path), *slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		if (mkdir(dir, 0750) < 0 && errno != EEXIST)
			fatal("event=mkdir_failed dir=%s error=\"%s\"", dir, strerror(errno));
	}
	free(dir);
	char err[256];
	struct store *s = store_open(path, false, master_cfg->durability_full, err, sizeof(err));
	if (!s)
		fatal("event=database_failed path=%s error=\"%s\"", path, err);
	store_close(s);
}

/* Each worker holds up to max_connections sockets: take the hard
 * descriptor limit, not the customary soft 1024, for every process. */
static void raise_fd_limit(int max_connections)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur != RLIM_INFINITY && (rlim_t)max_connections + 64 > rl.rlim_cur)
		log_warn("event=fd_limit limit=%llu max_connections=%d",
			 (unsigned long long)rl.rlim_cur, max_connections);
}

int master_run(struct config *cfg)
{
	master_cfg = cfg;
	proctitle_set("heraldd: master");
	check_bind(cfg->listen);
	check_bind(cfg->admin_listen);
	if (!cfg->node_edge)
		prepare_database(cfg->database);   /* an edge has none: the primary's is the one */
	raise_fd_limit(cfg->max_connections);

	snprintf(hub_name, sizeof(hub_name), "heraldd-%d-hub", (int)getpid());
	hub_listen_fd = ipc_listen(hub_name);
	if (hub_listen_fd < 0)
		fatal("event=hub_socket_failed error=\"%s\"", strerror(errno));

	sigset_t set;
	sigemptyset(&set);
	int sigs[] = { SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGUSR1 };
	for (size_t i = 0; i < ARRAY_SIZE(sigs); i++)
		sigaddset(&set, sigs[i]);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	/* The hub first, the workers, then the courier. */
	size_t workers = (size_t)cfg->workers;
	nchildren = 1 + workers + !cfg->node_edge;
	children = xcalloc(nchildren, sizeof(*children));
	for (size_t i = 0; i < nchildren; i++) {
		int role = i == 0 ? ROLE_HUB : i <= workers ? ROLE_WORKER : ROLE_COURIER;
		children[i] = (struct child){ .role = role, .slot = role == ROLE_WORKER ? (int)i - 1 : 0,
					      .fd = -1, .backoff = BACKOFF_MIN };
		spawn(&children[i]);
	}
	log_info("event=started version=%s role=%s workers=%d listen=%s admin_listen=%s "
		 "database=%s", HERALD_VERSION,
		 !cfg->cluster_redis ? "standalone" : cfg->node_edge ? "edge" : "primary",
		 cfg->workers, cfg->listen, cfg->admin_listen,
		 cfg->node_edge ? "none" : cfg->database);

	bool stopping = false;
	int64_t deadline = 0;
	for (;;) {
		int64_t now = mono_ms(), wait = 1000;
		for (size_t i = 0; i < nchildren; i++) {
			struct child *c = &children[i];
			if (stopping || c->pid || !c->restart_at)
				continue;
			if (c->restart_at <= now)
				spawn(c);
			else
				wait = MIN(wait, c->restart_at - now);
		}
		if (stopping) {
			if (alive() == 0)
				break;
			if (now >= deadline) {
				log_warn("event=stop_timeout action=kill children=%zu", alive());
				signal_children(SIGKILL);
				deadline = now + 1000;
			}
			wait = MIN(wait, MAX(deadline - now, 1));
		}
		struct timespec ts = { wait / 1000, (wait % 1000) * 1000000 };
		siginfo_t info;
		int sig = sigtimedwait(&set, &info, &ts);
		switch (sig) {
		case SIGCHLD:
			reap(stopping);
			break;
		case SIGTERM:
		case SIGINT:
			if (!stopping) {
				log_info("event=stopping signal=%s", strsignal(sig));
				stopping = true;
				deadline = mono_ms() + (int64_t)cfg->shutdown_timeout * 1000;
				signal_children(SIGTERM);
			}
			break;
		case SIGHUP:
			reload();
			break;
		case SIGUSR1:
			log_reopen();
			signal_children(SIGUSR1);
			break;
		default:
			break;
		}
	}
	close(hub_listen_fd);
	free(children);
	log_info("event=stopped");
	return 0;
}
