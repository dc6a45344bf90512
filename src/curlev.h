/* curlev.h -- libcurl's multi interface on a libev loop: the sockets libcurl
 * wants watched are ev_io watchers and its timeout an ev_timer, so transfers
 * run beside everything else in the loop, with no thread and no polling.
 * Used by the courier (webhooks) and an edge's uplink (calls to the primary). */
#ifndef HERALD_CURLEV_H
#define HERALD_CURLEV_H

#include <curl/curl.h>
#include <ev.h>

struct curlev {
	CURLM *multi;              /* add transfers with curl_multi_add_handle */
	struct ev_loop *loop;
	ev_timer timer;
	/* A transfer ended (result says how); it is already out of multi and
	 * the easy handle is the callee's again. */
	void (*done)(CURL *easy, CURLcode result);
};

/* Sets up c->multi on loop (and libcurl itself); exits when libcurl cannot start. */
void curlev_init(struct curlev *c, struct ev_loop *loop, void (*done)(CURL *, CURLcode));
/* Frees the multi handle and its cached connections; the caller has removed
 * its transfers first (curl_multi_remove_handle). */
void curlev_free(struct curlev *c);

#endif
