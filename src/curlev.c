/* curlev.c -- libcurl's multi interface on a libev loop (curlev.h). */
#include "curlev.h"

#include <stdlib.h>

#include "log.h"
#include "util.h"

/* A socket libcurl asked us to watch. */
struct curlev_sock {
	ev_io io;
	struct curlev *c;
};

static void collect_done(struct curlev *c)
{
	CURLMsg *msg;
	int left;
	while ((msg = curl_multi_info_read(c->multi, &left))) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		CURL *h = msg->easy_handle;
		CURLcode result = msg->data.result;
		curl_multi_remove_handle(c->multi, h);
		c->done(h, result);
	}
}

static void sock_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct curlev_sock *s = w->data;
	struct curlev *c = s->c;
	int running;
	int action = (revents & EV_READ ? CURL_CSELECT_IN : 0) |
		     (revents & EV_WRITE ? CURL_CSELECT_OUT : 0);
	curl_multi_socket_action(c->multi, w->fd, action, &running);
	collect_done(c);
}

static int sock_cb(CURL *h, curl_socket_t fd, int what, void *arg, void *sockp)
{
	struct curlev *c = arg;
	struct curlev_sock *s = sockp;
	if (what == CURL_POLL_REMOVE) {
		if (s) {
			ev_io_stop(c->loop, &s->io);
			free(s);
		}
		return 0;
	}
	if (!s) {
		s = xcalloc(1, sizeof(*s));
		s->c = c;
		curl_multi_assign(c->multi, fd, s);
	} else {
		ev_io_stop(c->loop, &s->io);
	}
	int events = (what & CURL_POLL_IN ? EV_READ : 0) | (what & CURL_POLL_OUT ? EV_WRITE : 0);
	ev_io_init(&s->io, sock_io_cb, fd, events);
	s->io.data = s;
	ev_io_start(c->loop, &s->io);
	return 0;
}

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct curlev *c = w->data;
	int running;
	curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	collect_done(c);
}

static int timer_set_cb(CURLM *multi, long timeout_ms, void *arg)
{
	struct curlev *c = arg;
	ev_timer_stop(c->loop, &c->timer);
	if (timeout_ms >= 0) {
		ev_timer_set(&c->timer, (double)timeout_ms / 1000.0, 0);
		ev_timer_start(c->loop, &c->timer);
	}
	return 0;
}

void curlev_init(struct curlev *c, struct ev_loop *loop, void (*done)(CURL *, CURLcode))
{
	*c = (struct curlev){ .loop = loop, .done = done };
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || !(c->multi = curl_multi_init()))
		fatal("event=curl_init_failed");
	ev_timer_init(&c->timer, timer_cb, 0, 0);
	c->timer.data = c;
	curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
	curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
	curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, timer_set_cb);
	curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
}

void curlev_free(struct curlev *c)
{
	ev_timer_stop(c->loop, &c->timer);
	curl_multi_cleanup(c->multi);
	c->multi = NULL;
	curl_global_cleanup();
}
