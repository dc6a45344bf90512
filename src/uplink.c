/* uplink.c -- an edge's HTTP calls to its primary's admin API (uplink.h),
 * on the relay's loop through curlev.c. Connections are kept alive between
 * calls in the multi handle's cache. */
#include "uplink.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "curlev.h"
#include "ipc.h"
#include "log.h"
#include "util.h"

#define UPLINK_CONNECT_MS 2000
#define UPLINK_TIMEOUT_MS 5000
/* A longer response is cut here: what is relayed to a worker must fit in an
 * IPC frame, and a body of frames is read by whole frames anyway. */
#define UPLINK_BODY_MAX (IPC_MAX_PAYLOAD - 64)

struct call {
	CURL *easy;                /* NULL when it never went out */
	char *url, *body;
	struct buf resp;
	uplink_done_fn fn;
	void *arg;
	char error[CURL_ERROR_SIZE];
	struct call *prev, *next;  /* on up.calls, or on up.failed */
};

static struct {
	struct curlev curl;
	char *primary;             /* NULL until known */
	struct curl_slist *headers;
	struct call *calls;        /* in flight */
	struct call *failed;       /* answered with status 0 on the next loop turn */
	ev_timer fail_timer;
	size_t pending;
} up;

static void call_link(struct call **list, struct call *c)
{
	c->prev = NULL;
	c->next = *list;
	if (*list)
		(*list)->prev = c;
	*list = c;
}

static void call_unlink(struct call **list, struct call *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		*list = c->next;
	if (c->next)
		c->next->prev = c->prev;
}

/* Answers c (status 0: no response) and frees it; c is on no list. */
static void call_finish(struct call *c, int status)
{
	up.pending--;
	c->fn(c->arg, status, c->resp.data, c->resp.len);
	buf_free(&c->resp);
	free(c->url);
	free(c->body);
	free(c);
}

static void call_fail_later(struct call *c)
{
	call_link(&up.failed, c);
	ev_timer_start(up.curl.loop, &up.fail_timer);
}

static void fail_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	while (up.failed) {
		struct call *c = up.failed;
		call_unlink(&up.failed, c);
		call_finish(c, 0);
	}
}

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
	struct call *c = arg;
	size_t len = size * n;
	if (c->resp.len < UPLINK_BODY_MAX)
		buf_append(&c->resp, p, MIN(len, UPLINK_BODY_MAX - c->resp.len));
	return len;
}

static void call_done(CURL *h, CURLcode result)
{
	struct call *c;
	long status = 0;
	curl_easy_getinfo(h, CURLINFO_PRIVATE, (char **)&c);
	if (result == CURLE_OK)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	else
		log_debug("event=uplink_failed url=%s error=\"%s\"", c->url,
			  *c->error ? c->error : curl_easy_strerror(result));
	curl_easy_cleanup(h);
	call_unlink(&up.calls, c);
	call_finish(c, (int)status);
}

void uplink_call(const char *method, const char *path, const char *body, size_t len,
		 uplink_done_fn fn, void *arg)
{
	struct call *c = xcalloc(1, sizeof(*c));
	c->fn = fn;
	c->arg = arg;
	up.pending++;
	CURL *h = up.primary ? curl_easy_init() : NULL;
	if (!h) {
		call_fail_later(c);
		return;
	}
	size_t n = strlen(up.primary) + strlen(path) + 1;
	c->url = xmalloc(n);
	snprintf(c->url, n, "%s%s", up.primary, path);
	curl_easy_setopt(h, CURLOPT_URL, c->url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, up.headers);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)UPLINK_CONNECT_MS);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)UPLINK_TIMEOUT_MS);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, c);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c->error);
	curl_easy_setopt(h, CURLOPT_PRIVATE, c);
	if (strcmp(method, "GET") != 0) {
		c->body = xstrndup(body ? body : "", body ? len : 0);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, c->body);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)(body ? len : 0));
		if (strcmp(method, "POST") != 0)
			curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	}
	c->easy = h;
	call_link(&up.calls, c);
	curl_multi_add_handle(up.curl.multi, h);
}

void uplink_set_primary(const char *api_url)
{
	if (api_url && !*api_url)
		api_url = NULL;
	if (api_url == up.primary || (api_url && up.primary && strcmp(api_url, up.primary) == 0))
		return;
	log_info("event=primary_changed api=%s", api_url ? api_url : "none");
	free(up.primary);
	up.primary = api_url ? xstrdup(api_url) : NULL;
}

bool uplink_known(void)
{
	return up.primary != NULL;
}

size_t uplink_pending(void)
{
	return up.pending;
}

void uplink_init(struct ev_loop *loop, const struct config *cfg)
{
	curlev_init(&up.curl, loop, call_done);
	ev_timer_init(&up.fail_timer, fail_timer_cb, 0, 0);
	struct buf auth = { 0 };
	buf_printf(&auth, "Authorization: Bearer %s", cfg->api_key);
	buf_append(&auth, "", 1);
	up.headers = curl_slist_append(up.headers, auth.data);
	buf_free(&auth);
	up.headers = curl_slist_append(up.headers, "Content-Type: application/json");
	up.headers = curl_slist_append(up.headers, "Expect:");   /* no 100-continue round trip */
}

void uplink_free(void)
{
	ev_timer_stop(up.curl.loop, &up.fail_timer);
	while (up.calls) {
		struct call *c = up.calls;
		curl_multi_remove_handle(up.curl.multi, c->easy);
		curl_easy_cleanup(c->easy);
		call_unlink(&up.calls, c);
		call_finish(c, 0);
	}
	fail_timer_cb(up.curl.loop, &up.fail_timer, 0);
	curlev_free(&up.curl);
	curl_slist_free_all(up.headers);
	free(up.primary);
	memset(&up, 0, sizeof(up));
}
