/* fuzz_http.c -- libFuzzer target for http.c: arbitrary bytes as a request
 * head under small limits, then the helpers a handler runs on the result. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Small limits so that the 431 and 413 paths are reached often. */
static const struct http_limits fuzz_limits = { 1024, 8, 4096 };

static void fuzz_query(const struct http_request *req)
{
	static const char *const keys[] = { "token", "prefix", "since", "limit", "", "a b", "user" };
	char small[4], big[256];

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		int n = http_query_param(req->query, req->query_len, keys[i], big, sizeof(big));
		if (n >= 0 && (size_t)n != strlen(big))
			abort();
		n = http_query_param(req->query, req->query_len, keys[i], small, sizeof(small));
		if (n >= (int)sizeof(small))
			abort();
	}
	/* Every key the query itself names. */
	const char *p = req->query, *end = req->query + req->query_len;
	while (p < end) {
		const char *amp = memchr(p, '&', (size_t)(end - p));
		const char *stop = amp ? amp : end;
		const char *eq = memchr(p, '=', (size_t)(stop - p));
		size_t klen = (size_t)((eq ? eq : stop) - p);
		if (klen < sizeof(big) && http_url_decode(p, klen, big, sizeof(big)) >= 0) {
			char key[256];
			memcpy(key, big, strlen(big) + 1);
			(void)http_query_param(req->query, req->query_len, key, big, sizeof(big));
		}
		if (amp == NULL)
			break;
		p = amp + 1;
	}
}

static void fuzz_request(const uint8_t *data, size_t size, int hl, const struct http_request *req)
{
	const char *buf = (const char *)data;
	struct http_request again;
	int status;
	char path[128];

	if ((size_t)hl > size || (size_t)hl > fuzz_limits.max_header_size ||
	    req->nheaders > fuzz_limits.max_headers ||
	    req->content_length > fuzz_limits.max_body_size ||
	    req->method < buf || req->target + req->target_len > buf + hl ||
	    req->path != req->target || req->path_len > req->target_len ||
	    (req->minor_version != 0 && req->minor_version != 1))
		abort();
	/* The head ends exactly where the parser said, and not a byte sooner. */
	if (http_parse_request(buf, (size_t)hl, &fuzz_limits, &again, &status) != hl)
		abort();
	if (http_parse_request(buf, (size_t)hl - 1, &fuzz_limits, &again, &status) != HTTP_INCOMPLETE)
		abort();

	for (size_t i = 0; i < req->nheaders; i++) {
		const struct http_header *h = &req->headers[i];
		if (h->name_len == 0 || h->value + h->value_len > buf + hl)
			abort();
		(void)http_header_has_token(h, "close");
		(void)http_header_has_token(h, "upgrade");
	}
	(void)http_find_header(req, "Host");
	(void)http_find_header(req, "Sec-WebSocket-Key");
	(void)http_url_decode(req->path, req->path_len, path, sizeof(path));
	if (req->query != NULL)
		fuzz_query(req);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct http_request req;
	struct buf out = { 0 };
	int status = 0;
	int hl = http_parse_request((const char *)data, size, &fuzz_limits, &req, &status);

	if (hl > 0) {
		fuzz_request(data, size, hl, &req);
		http_response(&out, 200, "text/plain", (const char *)data + hl,
			      MIN(size - (size_t)hl, req.content_length), req.keep_alive);
	} else if (hl == HTTP_ERROR) {
		if (status != 400 && status != 413 && status != 431 && status != 501 && status != 505)
			abort();
		/* Input bytes as the message exercise the JSON escaping. */
		char msg[65];
		size_t n = MIN(size, sizeof(msg) - 1);
		memcpy(msg, data, n);
		msg[n] = '\0';
		http_error(&out, status, "bad_request", msg, false);
	} else if (hl != HTTP_INCOMPLETE) {
		abort();
	}
	buf_free(&out);
	return 0;
}
