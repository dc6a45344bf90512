/* heraldd.c -- the daemon's entry point: options, configuration, then the master. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "master.h"
#include "util.h"

static void usage(FILE *fp)
{
	fprintf(fp, "usage: heraldd [-c FILE] [-t] [-f] [-v]\n"
		    "  -c FILE  configuration file (default %s/herald/herald.conf)\n"
		    "  -t       check the configuration and exit\n"
		    "  -f       stay in the foreground\n"
		    "  -v       print the version and exit\n", SYSCONFDIR);
}

/* Detaches from the terminal: fork, new session, stdin and stdout to
 * /dev/null. stderr stays: without log_file the log goes there (the journal
 * under systemd). */
static void daemonize(void)
{
	pid_t pid = fork();
	if (pid < 0)
		fatal("event=fork_failed error=\"%s\"", strerror(errno));
	if (pid > 0)
		_exit(0);
	setsid();
	int fd = open("/dev/null", O_RDWR);
	if (fd >= 0) {
		dup2(fd, STDIN_FILENO);
		dup2(fd, STDOUT_FILENO);
		if (fd > STDERR_FILENO)
			close(fd);
	}
}

int main(int argc, char **argv)
{
	const char *path = SYSCONFDIR "/herald/herald.conf";
	bool check = false, foreground = false;
	int opt;
	while ((opt = getopt(argc, argv, "c:tfvh")) != -1) {
		switch (opt) {
		case 'c': path = optarg; break;
		case 't': check = true; break;
		case 'f': foreground = true; break;
		case 'v': printf("heraldd %s\n", HERALD_VERSION); return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}

	static struct config cfg;
	char err[512];
	if (config_load(&cfg, path, err, sizeof(err)) < 0) {
		fprintf(stderr, "heraldd: %s\n", err);
		return 1;
	}
	if (check) {
		printf("heraldd: configuration %s is valid\n", path);
		config_free(&cfg);
		return 0;
	}
	proctitle_init(argc, argv);
	log_init("master", (enum log_level)cfg.log_level, cfg.log_file);
	if (!foreground)
		daemonize();
	int status = master_run(&cfg);
	config_free(&cfg);
	return status;
}
