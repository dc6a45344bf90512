/* test_http.c -- unit tests for http.c: request parsing (complete, split,
 * pipelined, every error status), headers, query decoding and responses. */

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "http.h"
#include "test.h"

static const struct http_limits limits = { 8192, HTTP_MAX_HEADERS, 1 << 20 };

/* Parses a copy of s in a buffer of exactly its size, so that a read past
 * the end shows up under ASan and valgrind; only the result and req's
 * counts are usable afterwards, since req points into the freed copy. */
static int parse_lim(const char *s, size_t len, const struct http_limits *lim,
		     struct http_request *req, int *status)
{
	char *copy = malloc(len ? len : 1);
	int r;

	memcpy(copy, s, len);
	r = http_parse_request(copy, len, lim, req, status);
	free(copy);
	return r;
}

/* Parses s in place: req points into s, which outlives it. */
static int parse(const char *s, struct http_request *req, int *status)
{
	return http_parse_request(s, strlen(s), &limits, req, status);
}

/* Expects s to be refused with status. */
static void check_error(const char *s, const struct http_limits *lim, int want, int line)
{
	struct http_request req;
	int status = 0;
	int r = parse_lim(s, strlen(s), lim ? lim : &limits, &req, &status);

	test_checks++;
	if (r != HTTP_ERROR || status != want) {
		test_failures++;
		fprintf(stderr, "%s:%d: parse returned %d status %d, expected error %d for \"%s\"\n",
			__FILE__, line, r, status, want, s);
	}
}
#define CHECK_ERROR(s, want) check_error((s), NULL, (want), __LINE__)
#define CHECK_ERROR_LIM(s, lim, want) check_error((s), (lim), (want), __LINE__)

/* hay need not be NUL-terminated (a struct buf is not). */
static const char *find(const char *hay, size_t n, const char *needle)
{
	size_t m = strlen(needle);

	for (size_t i = 0; m <= n && i <= n - m; i++) {
		if (memcmp(hay + i, needle, m) == 0)
			return hay + i;
	}
	return NULL;
}

static bool contains(const char *hay, size_t n, const char *needle)
{
	return find(hay, n, needle) != NULL;
}

static bool mem_is(const char *p, size_t n, const char *lit)
{
	return p != NULL && strlen(lit) == n && memcmp(p, lit, n) == 0;
}

/* ---------------------------------------------------------------- parsing */

static void test_simple_get(void)
{
	const char *s = "GET /ws HTTP/1.1\r\nHost: example.com\r\n\r\n";
	struct http_request req;
	int status = -7;

	int r = http_parse_request(s, strlen(s), &limits, &req, &status);
	CHECK_EQ_INT(r, strlen(s));
	CHECK_EQ_INT(status, 0);
	CHECK(mem_is(req.method, req.method_len, "GET"));
	CHECK(mem_is(req.target, req.target_len, "/ws"));
	CHECK(mem_is(req.path, req.path_len, "/ws"));
	CHECK(req.query == NULL);
	CHECK_EQ_INT(req.query_len, 0);
	CHECK_EQ_INT(req.minor_version, 1);
	CHECK_EQ_INT(req.nheaders, 1);
	CHECK(mem_is(req.headers[0].name, req.headers[0].name_len, "Host"));
	CHECK(mem_is(req.headers[0].value, req.headers[0].value_len, "example.com"));
	CHECK_EQ_INT(req.content_length, 0);
	CHECK(req.keep_alive);
	CHECK(!req.upgrade_websocket);
	/* Pointers go into the caller's buffer. */
	CHECK(req.method == s);
	CHECK(req.target == s + 4);

	/* No headers at all is fine. */
	r = parse("GET / HTTP/1.0\r\n\r\n", &req, &status);
	CHECK_EQ_INT(r, 18);
	CHECK_EQ_INT(req.nheaders, 0);
	CHECK_EQ_INT(req.minor_version, 0);
	CHECK(mem_is(req.path, req.path_len, "/"));

	/* Methods are any token. */
	r = parse("M-SEARCH.X~ /a HTTP/1.1\r\n\r\n", &req, &status);
	CHECK(r > 0);
	CHECK(mem_is(req.method, req.method_len, "M-SEARCH.X~"));
}

static void test_headers(void)
{
	const char *s = "POST /api/publish HTTP/1.1\r\n"
			"Host: h\r\n"
			"X-Spaces:   padded value \t \r\n"
			"X-Empty:\r\n"
			"X-Empty2:   \r\n"
			"X-Tab:\tv\r\n"
			"X-Utf8: caf\xc3\xa9\r\n"
			"x-weird!#$%&'*+-.^_`|~: ok\r\n"
			"Content-Length: 5\r\n"
			"\r\nhello";
	struct http_request req;
	int status;
	const struct http_header *h;

	int r = parse(s, &req, &status);
	CHECK_EQ_INT(r, strlen(s) - 5);
	CHECK_EQ_INT(req.nheaders, 8);
	CHECK_EQ_INT(req.content_length, 5);
	CHECK(mem_is(s + r, req.content_length, "hello"));

	h = http_find_header(&req, "x-spaces");
	CHECK(h != NULL && mem_is(h->value, h->value_len, "padded value"));
	h = http_find_header(&req, "X-EMPTY");
	CHECK(h != NULL && h->value_len == 0);
	h = http_find_header(&req, "x-empty2");
	CHECK(h != NULL && h->value_len == 0);
	h = http_find_header(&req, "X-Tab");
	CHECK(h != NULL && mem_is(h->value, h->value_len, "v"));
	h = http_find_header(&req, "X-Utf8");
	CHECK(h != NULL && mem_is(h->value, h->value_len, "caf\xc3\xa9"));
	h = http_find_header(&req, "X-WEIRD!#$%&'*+-.^_`|~");
	CHECK(h != NULL && mem_is(h->value, h->value_len, "ok"));
	CHECK(http_find_header(&req, "X-Missing") == NULL);
	CHECK(http_find_header(&req, "X-Empt") == NULL);
	CHECK(http_find_header(&req, "X-Empty22") == NULL);

	/* The first of repeated headers is found. */
	r = parse("GET / HTTP/1.1\r\nA: 1\r\na: 2\r\n\r\n", &req, &status);
	CHECK(r > 0);
	h = http_find_header(&req, "A");
	CHECK(h != NULL && mem_is(h->value, h->value_len, "1"));

	/* Exactly max_headers headers are accepted. */
	struct http_limits lim = limits;
	lim.max_headers = 3;
	s = "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
	r = parse_lim(s, strlen(s), &lim, &req, &status);
	CHECK_EQ_INT(r, strlen(s));
	CHECK_EQ_INT(req.nheaders, 3);
}

static void test_header_tokens(void)
{
	struct http_header h = { "Connection", 10, NULL, 0 };
	static const struct { const char *value, *token; bool want; } t[] = {
		{ "close", "close", true },
		{ "Close", "close", true },
		{ "keep-alive, Upgrade", "upgrade", true },
		{ "keep-alive,upgrade", "UPGRADE", true },
		{ " ,, upgrade ,", "upgrade", true },
		{ "keep-alive ,\tclose\t", "close", true },
		{ "upgrades", "upgrade", false },
		{ "xupgrade", "upgrade", false },
		{ "up grade", "upgrade", false },
		{ "", "close", false },
		{ "herald.v1, other", "herald.v1", true },
		{ "other,herald.v1", "herald.v1", true },
		{ "herald.v2", "herald.v1", false },
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		h.value = t[i].value;
		h.value_len = strlen(t[i].value);
		CHECK_EQ_INT(http_header_has_token(&h, t[i].token), t[i].want);
	}
	CHECK(!http_header_has_token(NULL, "close"));
}

static void test_path_and_query(void)
{
	struct http_request req;
	int status;

	CHECK(parse("GET /api/rooms?prefix=race&x=1 HTTP/1.1\r\n\r\n", &req, &status) > 0);
	CHECK(mem_is(req.target, req.target_len, "/api/rooms?prefix=race&x=1"));
	CHECK(mem_is(req.path, req.path_len, "/api/rooms"));
	CHECK(mem_is(req.query, req.query_len, "prefix=race&x=1"));

	/* An empty query is present but empty. */
	CHECK(parse("GET /x? HTTP/1.1\r\n\r\n", &req, &status) > 0);
	CHECK(mem_is(req.path, req.path_len, "/x"));
	CHECK(req.query != NULL && req.query_len == 0);

	/* Only the first '?' splits. */
	CHECK(parse("GET /x?a=1?b HTTP/1.1\r\n\r\n", &req, &status) > 0);
	CHECK(mem_is(req.path, req.path_len, "/x"));
	CHECK(mem_is(req.query, req.query_len, "a=1?b"));

	CHECK(parse("GET /a%20b/c HTTP/1.1\r\n\r\n", &req, &status) > 0);
	CHECK(mem_is(req.path, req.path_len, "/a%20b/c"));
	CHECK(req.query == NULL);
}

static void test_keep_alive(void)
{
	static const struct { const char *req; bool want; } t[] = {
		{ "GET / HTTP/1.1\r\n\r\n", true },
		{ "GET / HTTP/1.1\r\nConnection: close\r\n\r\n", false },
		{ "GET / HTTP/1.1\r\nConnection: CLOSE\r\n\r\n", false },
		{ "GET / HTTP/1.1\r\nConnection: keep-alive\r\n\r\n", true },
		{ "GET / HTTP/1.1\r\nConnection: keep-alive, close\r\n\r\n", false },
		{ "GET / HTTP/1.1\r\nConnection: upgrade\r\nconnection: close\r\n\r\n", false },
		{ "GET / HTTP/1.1\r\nConnection: closed\r\n\r\n", true },
		{ "GET / HTTP/1.0\r\n\r\n", false },
		{ "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true },
		{ "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", true },
		{ "GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", false },
		{ "GET / HTTP/1.0\r\nConnection: close\r\n\r\n", false },
		{ "GET / HTTP/1.0\r\nKeep-Alive: timeout=5\r\n\r\n", false },
	};
	struct http_request req;
	int status;

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		int r = parse(t[i].req, &req, &status);
		CHECK_EQ_INT(r, strlen(t[i].req));
		if (req.keep_alive != t[i].want)
			fprintf(stderr, "keep-alive case %zu: %s", i, t[i].req);
		CHECK_EQ_INT(req.keep_alive, t[i].want);
	}
}

static void test_upgrade(void)
{
	static const struct { const char *req; bool want; } t[] = {
		{ "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", true },
		{ "GET /ws HTTP/1.1\r\nupgrade: WebSocket\r\nconnection: keep-alive, upgrade\r\n\r\n", true },
		{ "GET /ws HTTP/1.1\r\nUpgrade: h2c, websocket\r\nConnection: upgrade\r\n\r\n", true },
		{ "GET /ws HTTP/1.1\r\nConnection: Upgrade\r\n\r\n", false },
		{ "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n", false },
		{ "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: keep-alive\r\n\r\n", false },
		{ "GET /ws HTTP/1.1\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n", false },
		{ "GET /ws HTTP/1.1\r\nUpgrade: websockets\r\nConnection: Upgrade\r\n\r\n", false },
		{ "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgraded\r\n\r\n", false },
		/* HTTP/1.0 cannot upgrade. */
		{ "GET /ws HTTP/1.0\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", false },
	};
	struct http_request req;
	int status;

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		CHECK(parse(t[i].req, &req, &status) > 0);
		if (req.upgrade_websocket != t[i].want)
			fprintf(stderr, "upgrade case %zu: %s", i, t[i].req);
		CHECK_EQ_INT(req.upgrade_websocket, t[i].want);
	}
}

static void test_pipelined(void)
{
#define FIRST "POST /api/publish HTTP/1.1\r\nContent-Length: 7\r\n\r\n"
#define SECOND "GET /health HTTP/1.1\r\nConnection: close\r\n\r\n"
	const char *s = FIRST "{\"a\":1}" SECOND "GET /par";
	size_t len = strlen(s), off = 0;
	struct http_request req;
	int status;

	int r = http_parse_request(s, len, &limits, &req, &status);
	CHECK_EQ_INT(r, strlen(FIRST));
	CHECK(mem_is(req.method, req.method_len, "POST"));
	CHECK_EQ_INT(req.content_length, 7);
	CHECK(mem_is(s + r, req.content_length, "{\"a\":1}"));
	CHECK(req.keep_alive);
	off = (size_t)r + req.content_length;

	r = http_parse_request(s + off, len - off, &limits, &req, &status);
	CHECK_EQ_INT(r, strlen(SECOND));
	CHECK(mem_is(req.path, req.path_len, "/health"));
	CHECK(!req.keep_alive);
	CHECK_EQ_INT(req.content_length, 0);
	off += (size_t)r;

	/* The third request has only begun. */
	r = http_parse_request(s + off, len - off, &limits, &req, &status);
	CHECK_EQ_INT(r, HTTP_INCOMPLETE);
#undef FIRST
#undef SECOND
}

/* Every proper prefix of a valid request needs more; the whole completes. */
static void check_every_prefix(const char *s, size_t head_len, const struct http_limits *lim)
{
	size_t len = strlen(s);
	struct http_request req;
	int status, bad = 0;

	for (size_t n = 0; n < head_len; n++) {
		int r = parse_lim(s, n, lim, &req, &status);
		if (r != HTTP_INCOMPLETE) {
			fprintf(stderr, "prefix %zu of \"%s\": %d (status %d)\n", n, s, r, status);
			bad++;
		}
	}
	CHECK_EQ_INT(bad, 0);
	/* With or without any of the body, the head is complete. */
	for (size_t n = head_len; n <= len; n++)
		CHECK_EQ_INT(parse_lim(s, n, lim, &req, &status), head_len);
}

static void test_split_reads(void)
{
	static const char *reqs[] = {
		"GET /ws?token=abc HTTP/1.1\r\nHost: localhost:8080\r\nUpgrade: websocket\r\n"
		"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
		"Sec-WebSocket-Version: 13\r\nX-Empty:\r\nX-Pad:  v  \r\n\r\n",
		"GET / HTTP/1.0\r\n\r\n",
		"GET / HTTP/1.1\n\n",
		"\r\n\nGET / HTTP/1.1\r\nA: b\n\r\n",
		"DELETE /api/connections/42 HTTP/1.1\r\nAuthorization: Bearer k\r\n\r\n",
	};
	for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++)
		check_every_prefix(reqs[i], strlen(reqs[i]), &limits);

	/* With a body after the head. */
	const char *post = "POST /api/publish HTTP/1.1\r\nContent-Length: 11\r\n\r\n{\"room\":1}\n";
	check_every_prefix(post, strlen(post) - 11, &limits);

	/* A head of exactly max_header_size bytes fits, byte by byte too. */
	const char *fit = "GET /x HTTP/1.1\r\nHost: h\r\n\r\n";
	struct http_limits lim = limits;
	lim.max_header_size = strlen(fit);
	check_every_prefix(fit, strlen(fit), &lim);
}

static void test_bare_lf_and_empty_lines(void)
{
	struct http_request req;
	int status;

	const char *s = "GET /a HTTP/1.1\nHost: x\nConnection: close\n\n";
	CHECK_EQ_INT(parse(s, &req, &status), strlen(s));
	CHECK_EQ_INT(req.nheaders, 2);
	CHECK(!req.keep_alive);

	/* Mixed endings are fine as well. */
	s = "GET /a HTTP/1.1\r\nHost: x\nA: b\r\n\n";
	CHECK_EQ_INT(parse(s, &req, &status), strlen(s));
	CHECK_EQ_INT(req.nheaders, 2);

	/* Empty lines before the request line are skipped, and counted. */
	s = "\r\n\r\nGET /a HTTP/1.1\r\n\r\n";
	CHECK_EQ_INT(parse(s, &req, &status), strlen(s));
	CHECK(mem_is(req.method, req.method_len, "GET"));
	CHECK_EQ_INT(parse("\r\n", &req, &status), HTTP_INCOMPLETE);
	CHECK_EQ_INT(parse("", &req, &status), HTTP_INCOMPLETE);
}

static void test_content_length(void)
{
	struct http_request req;
	int status;
	struct http_limits lim = limits;

	lim.max_body_size = 100;
	const char *s = "POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\n";
	CHECK_EQ_INT(parse_lim(s, strlen(s), &lim, &req, &status), strlen(s));
	CHECK_EQ_INT(req.content_length, 100);
	CHECK(parse("POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n", &req, &status) > 0);
	CHECK_EQ_INT(req.content_length, 0);
	CHECK(parse("POST / HTTP/1.1\r\nContent-Length: 007\r\n\r\n", &req, &status) > 0);
	CHECK_EQ_INT(req.content_length, 7);
	/* Surrounding whitespace is not part of the value. */
	CHECK(parse("POST / HTTP/1.1\r\nContent-Length:  12 \r\n\r\n", &req, &status) > 0);
	CHECK_EQ_INT(req.content_length, 12);
	/* Identical repeats are harmless. */
	CHECK(parse("POST / HTTP/1.1\r\nContent-Length: 3\r\ncontent-length: 3\r\n\r\n",
		    &req, &status) > 0);
	CHECK_EQ_INT(req.content_length, 3);

	CHECK_ERROR("POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\n", 400);
	CHECK_ERROR("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400);
	CHECK_ERROR("POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n", 400);
	CHECK_ERROR("POST / HTTP/1.1\r\nContent-Length: 5x\r\n\r\n", 400);
	CHECK_ERROR("POST / HTTP/1.1\r\nContent-Length: 1 2\r\n\r\n", 400);
	CHECK_ERROR("POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n", 400);
	CHECK_ERROR("POST / HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n", 400);
	CHECK_ERROR("POST / HTTP/1.1\r\nContent-Length:\r\n\r\n", 400);
	CHECK_ERROR("POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", 400);
	CHECK_ERROR("POST / HTTP/1.1\r\nContent-Length: 18446744073709551616\r\n\r\n", 400);
	CHECK_ERROR("POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999999\r\n\r\n", 400);
	/* The largest value that fits is only too large. */
	CHECK_ERROR("POST / HTTP/1.1\r\nContent-Length: 18446744073709551615\r\n\r\n", 413);
	CHECK_ERROR_LIM("POST / HTTP/1.1\r\nContent-Length: 101\r\n\r\n", &lim, 413);
	CHECK_ERROR("POST / HTTP/1.1\r\nContent-Length: 1048577\r\n\r\n", 413);
}

/* ---------------------------------------------------------------- errors */

static void test_errors_request_line(void)
{
	/* Malformed request lines: 400. */
	CHECK_ERROR(" GET / HTTP/1.1\r\n\r\n", 400);
	CHECK_ERROR("GET  / HTTP/1.1\r\n\r\n", 400);
	CHECK_ERROR("GET\t/ HTTP/1.1\r\n\r\n", 400);
	CHECK_ERROR("GE(T / HTTP/1.1\r\n\r\n", 400);
	CHECK_ERROR("GET\r\n\r\n", 400);
	CHECK_ERROR("GET /\r\n\r\n", 400);
	CHECK_ERROR("GET / \r\n\r\n", 400);
	CHECK_ERROR("GET x HTTP/1.1\r\n\r\n", 400);
	CHECK_ERROR("GET * HTTP/1.1\r\n\r\n", 400);
	CHECK_ERROR("GET http://host/ HTTP/1.1\r\n\r\n", 400);
	CHECK_ERROR("GET /a b HTTP/1.1\r\n\r\n", 400);
	CHECK_ERROR("GET /a\x01 HTTP/1.1\r\n\r\n", 400);
	CHECK_ERROR("GET /a\x7f HTTP/1.1\r\n\r\n", 400);
	CHECK_ERROR("GET /caf\xc3\xa9 HTTP/1.1\r\n\r\n", 400);
	CHECK_ERROR("GET /  HTTP/1.1\r\n\r\n", 400);
	CHECK_ERROR("GET / HTTP/1.1 \r\n\r\n", 400);
	CHECK_ERROR("GET / HTTX/1.1\r\n\r\n", 400);
	CHECK_ERROR("GET / http/1.1\r\n\r\n", 400);
	CHECK_ERROR("GET / HTTP/1.x\r\n\r\n", 400);
	CHECK_ERROR("GET / HTTP/1-1\r\n\r\n", 400);
	CHECK_ERROR("GET / HTTP/11.1\r\n\r\n", 400);
	CHECK_ERROR("GET / HTTP/1.10\r\n\r\n", 400);
	CHECK_ERROR("GET / HTTP/1\r\n\r\n", 400);
	CHECK_ERROR("GET / HTTP/\r\n\r\n", 400);
	CHECK_ERROR("GET / HTTP/1.1\rX\r\n\r\n", 400);
	CHECK_ERROR("GET / HTTP/1.1\r\r\n\r\n", 400);
	CHECK_ERROR("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400);  /* TLS hello */
	CHECK_ERROR("\r\r\n", 400);

	/* Errors show before the request is complete. */
	CHECK_ERROR("GET x", 400);
	CHECK_ERROR("GET / HTTX", 400);
	CHECK_ERROR("\x01", 400);

	/* Well-formed but unsupported versions: 505, once the line is whole. */
	CHECK_ERROR("GET / HTTP/2.0\r\n\r\n", 505);
	CHECK_ERROR("GET / HTTP/1.2\r\n\r\n", 505);
	CHECK_ERROR("GET / HTTP/0.9\r\n\r\n", 505);
	CHECK_ERROR("GET / HTTP/3.0\r\nHost: x\r\n", 505);
	CHECK_ERROR("GET / HTTP/9.9\n", 505);

	struct http_request req;
	int status;
	CHECK_EQ_INT(parse("GET / HTTP/2.0", &req, &status), HTTP_INCOMPLETE);
}

static void test_errors_headers(void)
{
	CHECK_ERROR("GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400);
	CHECK_ERROR("GET / HTTP/1.1\r\nHost\t: x\r\n\r\n", 400);
	CHECK_ERROR("GET / HTTP/1.1\r\nHo st: x\r\n\r\n", 400);
	CHECK_ERROR("GET / HTTP/1.1\r\n: x\r\n\r\n", 400);
	CHECK_ERROR("GET / HTTP/1.1\r\nHost x\r\n\r\n", 400);
	CHECK_ERROR("GET / HTTP/1.1\r\nHost\r\n\r\n", 400);
	CHECK_ERROR("GET / HTTP/1.1\r\nH(st: x\r\n\r\n", 400);
	CHECK_ERROR("GET / HTTP/1.1\r\nH\xc3\xa9: x\r\n\r\n", 400);
	/* obs-fold, and whitespace before the first header. */
	CHECK_ERROR("GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n", 400);
	CHECK_ERROR("GET / HTTP/1.1\r\nA: b\r\n\tc\r\n\r\n", 400);
	CHECK_ERROR("GET / HTTP/1.1\r\n Host: x\r\n\r\n", 400);
	/* Control bytes in a value. */
	CHECK_ERROR("GET / HTTP/1.1\r\nA: b\x01" "c\r\n\r\n", 400);
	CHECK_ERROR("GET / HTTP/1.1\r\nA: b\x7f\r\n\r\n", 400);
	CHECK_ERROR("GET / HTTP/1.1\r\nA: b\rc\r\n\r\n", 400);
	CHECK_ERROR("GET / HTTP/1.1\r\nA: b\r\n\rX", 400);

	struct http_request req;
	int status = 0;
	const char nul[] = "GET / HTTP/1.1\r\nA: b\0c\r\n\r\n";
	CHECK_EQ_INT(parse_lim(nul, sizeof(nul) - 1, &limits, &req, &status), HTTP_ERROR);
	CHECK_EQ_INT(status, 400);
	const char nul_name[] = "GET / HTTP/1.1\r\nA\0: b\r\n\r\n";
	CHECK_EQ_INT(parse_lim(nul_name, sizeof(nul_name) - 1, &limits, &req, &status), HTTP_ERROR);
	CHECK_EQ_INT(status, 400);

	/* Transfer-Encoding of any kind: 501. */
	CHECK_ERROR("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 501);
	CHECK_ERROR("POST / HTTP/1.1\r\ntransfer-encoding: identity\r\n\r\n", 501);
	CHECK_ERROR("POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 501);
}

static void test_errors_limits(void)
{
	struct http_limits lim = limits;
	struct http_request req;
	int status;

	/* Too many headers: 431, as soon as the extra one begins. */
	lim.max_headers = 3;
	CHECK_ERROR_LIM("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n", &lim, 431);
	CHECK_ERROR_LIM("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD", &lim, 431);
	lim.max_headers = 0;
	CHECK_ERROR_LIM("GET / HTTP/1.1\r\nA: 1\r\n\r\n", &lim, 431);
	CHECK_EQ_INT(parse_lim("GET / HTTP/1.1\r\n\r\n", 18, &lim, &req, &status), 18);
	/* max_headers above the array size is capped. */
	lim.max_headers = 1000;
	char many[4096];
	size_t n = (size_t)snprintf(many, sizeof(many), "GET / HTTP/1.1\r\n");
	for (int i = 0; i < HTTP_MAX_HEADERS; i++)
		n += (size_t)snprintf(many + n, sizeof(many) - n, "H%d: v\r\n", i);
	CHECK_EQ_INT(parse_lim(many, n, &lim, &req, &status), HTTP_INCOMPLETE);
	snprintf(many + n, sizeof(many) - n, "\r\n");
	CHECK_EQ_INT(parse_lim(many, n + 2, &lim, &req, &status), n + 2);
	CHECK_EQ_INT(req.nheaders, HTTP_MAX_HEADERS);
	snprintf(many + n, sizeof(many) - n, "X: y\r\n\r\n");
	CHECK_ERROR_LIM(many, &lim, 431);

	/* A head longer than max_header_size: 431 even before it ends. */
	lim = limits;
	lim.max_header_size = 64;
	char big[256];
	memset(big, 0, sizeof(big));
	snprintf(big, sizeof(big), "GET / HTTP/1.1\r\nX-Long: ");
	memset(big + strlen(big), 'a', 100);
	CHECK_ERROR_LIM(big, &lim, 431);
	/* ... with exactly max_header_size bytes and no end yet ... */
	CHECK_EQ_INT(parse_lim(big, 63, &lim, &req, &status), HTTP_INCOMPLETE);
	CHECK_EQ_INT(parse_lim(big, 64, &lim, &req, &status), HTTP_ERROR);
	CHECK_EQ_INT(status, 431);
	/* ... in a long request line ... */
	memset(big, 0, sizeof(big));
	snprintf(big, sizeof(big), "GET /");
	memset(big + 5, 'p', 200);
	CHECK_ERROR_LIM(big, &lim, 431);
	/* ... in endless empty lines ... */
	memset(big, 0, sizeof(big));
	for (int i = 0; i < 100; i++)
		memcpy(big + 2 * i, "\r\n", 2);
	CHECK_ERROR_LIM(big, &lim, 431);
	/* ... and in a complete head one byte too long. */
	const char *head = "GET /x HTTP/1.1\r\nHost: h\r\n\r\n";
	lim.max_header_size = strlen(head) - 1;
	CHECK_ERROR_LIM(head, &lim, 431);
	lim.max_header_size = strlen(head);
	CHECK_EQ_INT(parse_lim(head, strlen(head), &lim, &req, &status), strlen(head));
	/* A body beyond the head does not count against the limit. */
	const char *post = "POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123456789";
	lim.max_header_size = strlen(post) - 10;
	CHECK_EQ_INT(parse_lim(post, strlen(post), &lim, &req, &status), strlen(post) - 10);
}

/* ---------------------------------------------------------------- queries */

static void check_param(const char *query, const char *key, int want, const char *value,
			size_t outlen, int line)
{
	char out[256];
	int r;

	memset(out, 'Z', sizeof(out));
	r = http_query_param(query, strlen(query), key, out, outlen);
	test_checks++;
	if (r != want || (want >= 0 && (strlen(out) != (size_t)want || memcmp(out, value, (size_t)want) != 0))) {
		test_failures++;
		fprintf(stderr, "%s:%d: query \"%s\" key \"%s\": %d \"%.*s\", expected %d \"%s\"\n",
			__FILE__, line, query, key, r, r > 0 ? r : 0, out, want, value ? value : "");
	}
}
#define CHECK_PARAM(q, k, want, v) check_param((q), (k), (want), (v), 256, __LINE__)

static void test_query_param(void)
{
	CHECK_PARAM("a=1&b=2", "a", 1, "1");
	CHECK_PARAM("a=1&b=2", "b", 1, "2");
	CHECK_PARAM("a=1&b=2", "c", -1, NULL);
	CHECK_PARAM("token=abc.def-ghi_jkl", "token", 15, "abc.def-ghi_jkl");
	CHECK_PARAM("a=1&a=2", "a", 1, "1");             /* first wins */
	CHECK_PARAM("ab=1&a=2", "a", 1, "2");            /* no prefix match */
	CHECK_PARAM("a=1", "ab", -1, NULL);
	CHECK_PARAM("b=a%3D1&a=x", "a", 1, "x");         /* keys are not found in values */
	CHECK_PARAM("a=b=c", "a", 3, "b=c");
	CHECK_PARAM("q=hello+world", "q", 11, "hello world");
	CHECK_PARAM("q=a%2Bb", "q", 3, "a+b");
	CHECK_PARAM("q=%20%7e%7E", "q", 3, " ~~");
	CHECK_PARAM("q=caf%C3%A9", "q", 5, "caf\xc3\xa9");
	CHECK_PARAM("q=race%3A42", "q", 7, "race:42");
	CHECK_PARAM("q=", "q", 0, "");
	CHECK_PARAM("q", "q", 0, "");                    /* present, no value */
	CHECK_PARAM("x=1&q&y=2", "q", 0, "");
	CHECK_PARAM("&&q=1&", "q", 1, "1");
	CHECK_PARAM("=1&q=2", "q", 1, "2");
	CHECK_PARAM("=1", "", 1, "1");
	CHECK_PARAM("", "q", -1, NULL);
	/* Keys are decoded before comparing. */
	CHECK_PARAM("to%6Ben=t", "token", 1, "t");
	CHECK_PARAM("a+b=1", "a b", 1, "1");
	CHECK_PARAM("a%2Bb=1", "a+b", 1, "1");
	CHECK_PARAM("a%zz=1&a=2", "a", 1, "2");          /* a bad key is skipped */
	/* Malformed values. */
	CHECK_PARAM("q=%", "q", -1, NULL);
	CHECK_PARAM("q=%2", "q", -1, NULL);
	CHECK_PARAM("q=%zz", "q", -1, NULL);
	CHECK_PARAM("q=%g0", "q", -1, NULL);
	CHECK_PARAM("q=a%00b", "q", -1, NULL);            /* would cut a C string */
	CHECK_PARAM("q=%2&r=1", "r", 1, "1");
	/* Output space: the value and its NUL must fit. */
	check_param("q=abcd", "q", 4, "abcd", 5, __LINE__);
	check_param("q=abcd", "q", -1, NULL, 4, __LINE__);
	check_param("q=%41%42", "q", 2, "AB", 3, __LINE__);
	check_param("q=%41%42", "q", -1, NULL, 2, __LINE__);
	check_param("q=", "q", 0, "", 1, __LINE__);
	check_param("q=", "q", -1, NULL, 0, __LINE__);

	/* The query need not be NUL-terminated. */
	char out[16];
	CHECK_EQ_INT(http_query_param("a=123&b=4", 4, "a", out, sizeof(out)), 2);
	CHECK_EQ_STR(out, "12");
	CHECK_EQ_INT(http_query_param("a=123&b=4", 4, "b", out, sizeof(out)), -1);
	CHECK_EQ_INT(http_query_param("q=%41", 4, "q", out, sizeof(out)), -1);
	CHECK_EQ_INT(http_query_param(NULL, 0, "q", out, sizeof(out)), -1);
}

static void test_url_decode(void)
{
	char out[32];

	CHECK_EQ_INT(http_url_decode("race%3A42", 9, out, sizeof(out)), 7);
	CHECK_EQ_STR(out, "race:42");
	CHECK_EQ_INT(http_url_decode("a+b", 3, out, sizeof(out)), 3);
	CHECK_EQ_STR(out, "a+b");                          /* '+' is literal in paths */
	CHECK_EQ_INT(http_url_decode("a%2fb%2F", 8, out, sizeof(out)), 4);
	CHECK_EQ_STR(out, "a/b/");
	CHECK_EQ_INT(http_url_decode("", 0, out, sizeof(out)), 0);
	CHECK_EQ_STR(out, "");
	CHECK_EQ_INT(http_url_decode("abc", 2, out, sizeof(out)), 2);
	CHECK_EQ_STR(out, "ab");
	CHECK_EQ_INT(http_url_decode("%", 1, out, sizeof(out)), -1);
	CHECK_EQ_INT(http_url_decode("%4", 2, out, sizeof(out)), -1);
	CHECK_EQ_INT(http_url_decode("%41", 2, out, sizeof(out)), -1);
	CHECK_EQ_INT(http_url_decode("%x1", 3, out, sizeof(out)), -1);
	CHECK_EQ_INT(http_url_decode("%00", 3, out, sizeof(out)), -1);
	CHECK_EQ_INT(http_url_decode("%ff", 3, out, sizeof(out)), 1);
	CHECK_EQ_INT((unsigned char)out[0], 0xff);
	CHECK_EQ_INT(http_url_decode("abcd", 4, out, 5), 4);
	CHECK_EQ_INT(http_url_decode("abcd", 4, out, 4), -1);
	CHECK_EQ_INT(http_url_decode("abcd", 4, out, 0), -1);
}

/* ---------------------------------------------------------------- responses */

static void test_status_text(void)
{
	static const int used[] = { 101, 200, 201, 202, 204, 400, 401, 403, 404, 405, 408,
				    409, 411, 413, 426, 429, 431, 500, 501, 503, 505 };

	for (size_t i = 0; i < sizeof(used) / sizeof(used[0]); i++)
		CHECK(strcmp(http_status_text(used[i]), "Unknown") != 0);
	CHECK_EQ_STR(http_status_text(200), "OK");
	CHECK_EQ_STR(http_status_text(404), "Not Found");
	CHECK_EQ_STR(http_status_text(431), "Request Header Fields Too Large");
	CHECK_EQ_STR(http_status_text(599), "Unknown");
	CHECK_EQ_STR(http_status_text(-1), "Unknown");
}

static void buf_check(struct buf *b, const char *want, int line)
{
	test_checks++;
	if (b->len != strlen(want) || memcmp(b->data, want, b->len) != 0) {
		test_failures++;
		fprintf(stderr, "%s:%d: got \"%.*s\", expected \"%s\"\n", __FILE__, line,
			(int)b->len, b->data ? b->data : "", want);
	}
	buf_reset(b);
}
#define CHECK_BUF(b, want) buf_check((b), (want), __LINE__)

static void test_response(void)
{
	struct buf b = { 0 };

	http_response(&b, 200, "application/json", "{\"ok\":true}", 11, true);
	CHECK_BUF(&b, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
		      "Content-Length: 11\r\nCache-Control: no-store\r\n\r\n{\"ok\":true}");
	http_response(&b, 404, "text/plain", "no", 2, false);
	CHECK_BUF(&b, "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n"
		      "Content-Length: 2\r\nCache-Control: no-store\r\nConnection: close\r\n\r\nno");
	http_response(&b, 202, NULL, NULL, 0, true);
	CHECK_BUF(&b, "HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\nCache-Control: no-store\r\n\r\n");
	/* No length on bodiless statuses. */
	http_response(&b, 204, NULL, NULL, 0, true);
	CHECK_BUF(&b, "HTTP/1.1 204 No Content\r\nCache-Control: no-store\r\n\r\n");
	http_response(&b, 204, NULL, NULL, 0, false);
	CHECK_BUF(&b, "HTTP/1.1 204 No Content\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n");
	/* Responses append. */
	http_response(&b, 200, NULL, NULL, 0, true);
	http_response(&b, 200, NULL, NULL, 0, true);
	CHECK_BUF(&b, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nCache-Control: no-store\r\n\r\n"
		      "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nCache-Control: no-store\r\n\r\n");
	buf_free(&b);
}

/* Checks that an http_error response parses as JSON with code and message. */
static void check_error_body(struct buf *b, int status, const char *code, const char *message)
{
	char line[64];
	const char *body;
	json_t *v, *err;
	json_error_t jerr;

	snprintf(line, sizeof(line), "HTTP/1.1 %d ", status);
	CHECK(b->len > strlen(line) && memcmp(b->data, line, strlen(line)) == 0);
	body = find(b->data, b->len, "\r\n\r\n");
	CHECK(body != NULL);
	if (body == NULL)
		return;
	body += 4;
	CHECK(contains(b->data, b->len, "Content-Type: application/json\r\n"));
	snprintf(line, sizeof(line), "Content-Length: %zu\r\n", b->len - (size_t)(body - b->data));
	CHECK(contains(b->data, b->len, line));
	v = json_loadb(body, b->len - (size_t)(body - b->data), 0, &jerr);
	CHECK(v != NULL);
	err = json_object_get(v, "error");
	CHECK(json_object_size(v) == 1 && json_object_size(err) == 2);
	CHECK_EQ_STR(json_string_value(json_object_get(err, "code")), code);
	CHECK_EQ_STR(json_string_value(json_object_get(err, "message")), message);
	json_decref(v);
	buf_reset(b);
}

static void test_error_response(void)
{
	struct buf b = { 0 };

	http_error(&b, 404, "not_found", "no such room", true);
	CHECK_BUF(&b, "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n"
		      "Content-Length: 55\r\nCache-Control: no-store\r\n\r\n"
		      "{\"error\":{\"code\":\"not_found\",\"message\":\"no such room\"}}");

	http_error(&b, 400, "bad_request", "bad \"room\" \\ name\n\x01\ttab", false);
	CHECK(contains(b.data, b.len, "Connection: close\r\n"));
	CHECK(contains(b.data, b.len, "\\\"room\\\" \\\\ name\\n\\u0001\\ttab"));
	check_error_body(&b, 400, "bad_request", "bad \"room\" \\ name\n\x01\ttab");

	http_error(&b, 503, "unavailable", "caf\xc3\xa9", true);
	check_error_body(&b, 503, "unavailable", "caf\xc3\xa9");

	http_error(&b, 429, "rate_limited", NULL, true);
	check_error_body(&b, 429, "rate_limited", "Too Many Requests");
	buf_free(&b);
}

TEST_MAIN("http",
	TEST(test_simple_get),
	TEST(test_headers),
	TEST(test_header_tokens),
	TEST(test_path_and_query),
	TEST(test_keep_alive),
	TEST(test_upgrade),
	TEST(test_pipelined),
	TEST(test_split_reads),
	TEST(test_bare_lf_and_empty_lines),
	TEST(test_content_length),
	TEST(test_errors_request_line),
	TEST(test_errors_headers),
	TEST(test_errors_limits),
	TEST(test_query_param),
	TEST(test_url_decode),
	TEST(test_status_text),
	TEST(test_response),
	TEST(test_error_response))
