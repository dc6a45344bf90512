/* http.h -- incremental, non-allocating HTTP/1.1 request parser and response helpers. */
#ifndef HERALD_HTTP_H
#define HERALD_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include "buf.h"

#define HTTP_MAX_HEADERS 64

struct http_header {
	const char *name;
	size_t name_len;
	const char *value;     /* leading and trailing whitespace stripped */
	size_t value_len;
};

/* Every pointer points into the caller's buffer, which must stay unchanged
 * while the request is used. */
struct http_request {
	const char *method;
	size_t method_len;
	const char *target;    /* path plus query, as sent */
	size_t target_len;
	const char *path;      /* target without the query */
	size_t path_len;
	const char *query;     /* after '?', NULL if none */
	size_t query_len;
	int minor_version;     /* HTTP/1.x */
	struct http_header headers[HTTP_MAX_HEADERS];
	size_t nheaders;
	size_t content_length; /* 0 when absent */
	bool keep_alive;       /* from version and Connection */
	bool upgrade_websocket;/* Connection: upgrade and Upgrade: websocket */
};

struct http_limits {
	size_t max_header_size;  /* request line + headers, bytes */
	size_t max_headers;      /* <= HTTP_MAX_HEADERS */
	size_t max_body_size;
};

/* Parses the request line and headers at buf[0..len). Returns the header
 * length (> 0) when complete; HTTP_INCOMPLETE when more bytes are needed;
 * HTTP_ERROR with *status set to 400 (malformed), 413 (body larger than
 * max_body_size), 431 (headers too large or too many), 501 (Transfer-Encoding),
 * or 505 (not HTTP/1.0 or 1.1). The body, content_length bytes, follows the
 * returned length. Never reads past buf+len, never allocates. */
#define HTTP_INCOMPLETE (-2)
#define HTTP_ERROR (-1)
int http_parse_request(const char *buf, size_t len, const struct http_limits *lim,
		       struct http_request *req, int *status);

/* Case-insensitive header lookup; NULL when absent. */
const struct http_header *http_find_header(const struct http_request *req, const char *name);
/* True when the comma-separated header value list contains token (case-insensitive). */
bool http_header_has_token(const struct http_header *h, const char *token);

/* Finds key in an application/x-www-form-urlencoded query and percent-decodes
 * its value into out (NUL-terminated). Returns the decoded length, or -1 when
 * the key is absent or the value does not fit or is malformed. */
int http_query_param(const char *query, size_t query_len, const char *key,
		     char *out, size_t outlen);
/* Percent-decodes s into out (NUL-terminated); -1 on bad escapes or overflow. */
int http_url_decode(const char *s, size_t len, char *out, size_t outlen);
/* Appends s percent-encoded as one URL path segment or query value (every byte
 * but the unreserved ones: the result is also valid JSON string text). */
void http_url_encode(struct buf *b, const char *s);

const char *http_status_text(int status);

/* Appends a complete response with Content-Length (and Connection: close
 * when !keep_alive) to out. content_type may be NULL when body_len is 0. */
void http_response(struct buf *out, int status, const char *content_type,
		   const char *body, size_t body_len, bool keep_alive);
/* A JSON error response: {"error":{"code":code,"message":message}}. */
void http_error(struct buf *out, int status, const char *code, const char *message,
		bool keep_alive);

#endif
