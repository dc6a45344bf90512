/* http.c -- HTTP/1.1 request parsing without allocation (in the manner of
 * picohttpparser), query decoding, and the few responses herald writes. */

#include <limits.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "http.h"
#include "util.h"

/* ---------------------------------------------------------------- bytes */

/* tchar from RFC 9110 §5.6.2: what methods and header names are made of. */
static bool http_is_tchar(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* Visible ASCII: a request-target has no spaces, controls or raw UTF-8
 * (clients percent-encode those). */
static bool http_is_target_char(unsigned char c)
{
	return c > 0x20 && c < 0x7f;
}

/* field-vchar, SP and HTAB; obs-text (bytes >= 0x80) is passed through. */
static bool http_is_value_char(unsigned char c)
{
	return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static int http_hex(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Case-insensitive comparison of s (n bytes) with the NUL-terminated lit. */
static bool http_eq(const char *s, size_t n, const char *lit)
{
	return strlen(lit) == n && strncasecmp(s, lit, n) == 0;
}

/* ---------------------------------------------------------------- parser */

/* The parser is re-run from the first byte on every read, so each step only
 * moves forward: it advances *pos, reports malformed input at once (a request
 * that is already wrong cannot become right with more bytes), or returns
 * HTTP_INCOMPLETE when it reaches end. */

static int http_fail(int *status, int code)
{
	*status = code;
	return HTTP_ERROR;
}

/* Consumes one line ending: CR LF, or a bare LF (RFC 9112 §2.2 allows a
 * recipient to accept it; it is accepted in every place a CR LF is). */
static int http_eol(const char *buf, size_t end, size_t *pos, int *status)
{
	size_t p = *pos;

	if (p >= end)
		return HTTP_INCOMPLETE;
	if (buf[p] == '\r') {
		if (++p >= end)
			return HTTP_INCOMPLETE;
		if (buf[p] != '\n')
			return http_fail(status, 400);
	} else if (buf[p] != '\n') {
		return http_fail(status, 400);
	}
	*pos = p + 1;
	return 0;
}

/* method SP request-target SP HTTP-version EOL */
static int http_parse_request_line(const char *buf, size_t end, size_t *pos,
				   struct http_request *req, int *status)
{
	static const char proto[] = "HTTP/";
	size_t p = *pos, start;
	int major, minor, r;

	/* A robust server ignores empty lines before a request (RFC 9112
	 * §2.2): some clients send a stray CR LF after a POST body. */
	while (p < end && (buf[p] == '\r' || buf[p] == '\n')) {
		if ((r = http_eol(buf, end, &p, status)) != 0)
			return r;
	}

	start = p;
	while (p < end && http_is_tchar((unsigned char)buf[p]))
		p++;
	if (p == end)
		return HTTP_INCOMPLETE;
	if (p == start || buf[p] != ' ')
		return http_fail(status, 400);
	req->method = buf + start;
	req->method_len = p - start;
	p++;

	/* Origin-form only: herald is never a proxy, and has no use for '*'. */
	if (p == end)
		return HTTP_INCOMPLETE;
	if (buf[p] != '/')
		return http_fail(status, 400);
	start = p;
	while (p < end && http_is_target_char((unsigned char)buf[p]))
		p++;
	if (p == end)
		return HTTP_INCOMPLETE;
	if (buf[p] != ' ')
		return http_fail(status, 400);
	req->target = buf + start;
	req->target_len = p - start;
	p++;

	/* "HTTP/" DIGIT "." DIGIT: anything else is not HTTP at all (400);
	 * a well-formed version other than 1.0 or 1.1 is 505. */
	for (size_t i = 0; i < sizeof(proto) - 1; i++, p++) {
		if (p == end)
			return HTTP_INCOMPLETE;
		if (buf[p] != proto[i])
			return http_fail(status, 400);
	}
	if (p == end)
		return HTTP_INCOMPLETE;
	if (buf[p] < '0' || buf[p] > '9')
		return http_fail(status, 400);
	major = buf[p++] - '0';
	if (p == end)
		return HTTP_INCOMPLETE;
	if (buf[p++] != '.')
		return http_fail(status, 400);
	if (p == end)
		return HTTP_INCOMPLETE;
	if (buf[p] < '0' || buf[p] > '9')
		return http_fail(status, 400);
	minor = buf[p++] - '0';
	if ((r = http_eol(buf, end, &p, status)) != 0)
		return r;
	if (major != 1 || minor > 1)
		return http_fail(status, 505);
	req->minor_version = minor;
	*pos = p;
	return 0;
}

/* header-field lines up to and including the empty line. */
static int http_parse_headers(const char *buf, size_t end, size_t *pos, size_t max_headers,
			      struct http_request *req, int *status)
{
	size_t p = *pos;
	int r;

	for (;;) {
		size_t name, name_end, value, value_end;

		if (p == end)
			return HTTP_INCOMPLETE;
		if (buf[p] == '\r' || buf[p] == '\n')
			break;
		/* obs-fold (a continuation line) is refused, as RFC 9112 §5.2
		 * permits; so is whitespace before the first header. */
		if (buf[p] == ' ' || buf[p] == '\t')
			return http_fail(status, 400);
		if (req->nheaders == max_headers)
			return http_fail(status, 431);

		name = p;
		while (p < end && http_is_tchar((unsigned char)buf[p]))
			p++;
		if (p == end)
			return HTTP_INCOMPLETE;
		/* No whitespace between name and colon (RFC 9112 §5.1). */
		if (p == name || buf[p] != ':')
			return http_fail(status, 400);
		name_end = p++;

		while (p < end && (buf[p] == ' ' || buf[p] == '\t'))
			p++;
		value = p;
		while (p < end && http_is_value_char((unsigned char)buf[p]))
			p++;
		if (p == end)
			return HTTP_INCOMPLETE;
		value_end = p;
		while (value_end > value && (buf[value_end - 1] == ' ' || buf[value_end - 1] == '\t'))
			value_end--;
		/* Anything but a line ending here is a control byte. */
		if ((r = http_eol(buf, end, &p, status)) != 0)
			return r;

		req->headers[req->nheaders].name = buf + name;
		req->headers[req->nheaders].name_len = name_end - name;
		req->headers[req->nheaders].value = buf + value;
		req->headers[req->nheaders].value_len = value_end - value;
		req->nheaders++;
	}
	if ((r = http_eol(buf, end, &p, status)) != 0)
		return r;
	*pos = p;
	return 0;
}

/* Content-Length is 1*DIGIT, nothing else: no sign, no spaces, no list. */
static int http_parse_length(const char *s, size_t n, uint64_t *out)
{
	uint64_t v = 0;

	if (n == 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		unsigned d = (unsigned char)s[i] - '0';
		if (d > 9 || v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

/* Framing and connection semantics from the complete header block. */
static int http_check_headers(struct http_request *req, const struct http_limits *lim,
			      int *status)
{
	bool have_length = false, conn_close = false, conn_keep = false;
	bool conn_upgrade = false, upgrade_ws = false;
	uint64_t length = 0;

	for (size_t i = 0; i < req->nheaders; i++) {
		const struct http_header *h = &req->headers[i];

		if (http_eq(h->name, h->name_len, "content-length")) {
			uint64_t v;
			if (http_parse_length(h->value, h->value_len, &v) < 0)
				return http_fail(status, 400);
			/* Disagreeing lengths are the stuff of request smuggling. */
			if (have_length && v != length)
				return http_fail(status, 400);
			have_length = true;
			length = v;
		} else if (http_eq(h->name, h->name_len, "transfer-encoding")) {
			/* Every body herald accepts is a small JSON document
			 * that clients send with a length; chunked decoding
			 * would be code with no user. */
			return http_fail(status, 501);
		} else if (http_eq(h->name, h->name_len, "connection")) {
			conn_close |= http_header_has_token(h, "close");
			conn_keep |= http_header_has_token(h, "keep-alive");
			conn_upgrade |= http_header_has_token(h, "upgrade");
		} else if (http_eq(h->name, h->name_len, "upgrade")) {
			upgrade_ws |= http_header_has_token(h, "websocket");
		}
	}
	if (length > lim->max_body_size)
		return http_fail(status, 413);
	req->content_length = (size_t)length;
	if (req->minor_version == 1)
		req->keep_alive = !conn_close;
	else
		req->keep_alive = conn_keep && !conn_close;
	/* An HTTP/1.0 request's Upgrade is ignored (RFC 9110 §7.8), and
	 * WebSocket needs 1.1 (RFC 6455 §4.1). */
	req->upgrade_websocket = req->minor_version == 1 && conn_upgrade && upgrade_ws;
	return 0;
}

int http_parse_request(const char *buf, size_t len, const struct http_limits *lim,
		       struct http_request *req, int *status)
{
	size_t max = MIN(lim->max_header_size, (size_t)INT_MAX);
	size_t max_headers = MIN(lim->max_headers, (size_t)HTTP_MAX_HEADERS);
	/* Never look past the limit: a request whose head does not end within
	 * it is refused however it continues. */
	size_t end = MIN(len, max);
	size_t pos = 0;
	int r;

	memset(req, 0, sizeof(*req));
	*status = 0;
	r = http_parse_request_line(buf, end, &pos, req, status);
	if (r == 0)
		r = http_parse_headers(buf, end, &pos, max_headers, req, status);
	if (r == HTTP_INCOMPLETE && len >= max)
		return http_fail(status, 431);
	if (r != 0)
		return r;
	if (http_check_headers(req, lim, status) < 0)
		return HTTP_ERROR;

	req->path = req->target;
	req->path_len = req->target_len;
	const char *q = memchr(req->target, '?', req->target_len);
	if (q != NULL) {
		req->path_len = (size_t)(q - req->target);
		req->query = q + 1;
		req->query_len = req->target_len - req->path_len - 1;
	}
	return (int)pos;
}

/* ---------------------------------------------------------------- headers */

const struct http_header *http_find_header(const struct http_request *req, const char *name)
{
	for (size_t i = 0; i < req->nheaders; i++) {
		if (http_eq(req->headers[i].name, req->headers[i].name_len, name))
			return &req->headers[i];
	}
	return NULL;
}

bool http_header_has_token(const struct http_header *h, const char *token)
{
	const char *p, *end;

	if (h == NULL)
		return false;
	p = h->value;
	end = h->value + h->value_len;
	while (p < end) {
		const char *comma = memchr(p, ',', (size_t)(end - p));
		const char *stop = comma ? comma : end;
		const char *s = p, *e = stop;

		while (s < e && (*s == ' ' || *s == '\t'))
			s++;
		while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		if (http_eq(s, (size_t)(e - s), token))
			return true;
		if (comma == NULL)
			break;
		p = comma + 1;
	}
	return false;
}

/* ---------------------------------------------------------------- URLs */

/* Decodes one byte of s at *i (advancing it): a %XX escape, '+' as a space
 * when plus is set, anything else as is. -1 on a bad escape or on %00, which
 * callers that use the result as a C string would silently cut short. */
static int http_decode_byte(const char *s, size_t len, size_t *i, bool plus)
{
	unsigned char c = (unsigned char)s[*i];
	int hi, lo;

	if (c == '+' && plus) {
		(*i)++;
		return ' ';
	}
	if (c != '%') {
		(*i)++;
		return c;
	}
	if (len - *i < 3)
		return -1;
	hi = http_hex((unsigned char)s[*i + 1]);
	lo = http_hex((unsigned char)s[*i + 2]);
	if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
		return -1;
	*i += 3;
	return hi << 4 | lo;
}

static int http_decode(const char *s, size_t len, bool plus, char *out, size_t outlen)
{
	size_t i = 0, n = 0;

	if (outlen == 0)
		return -1;
	while (i < len) {
		int c = http_decode_byte(s, len, &i, plus);
		if (c < 0 || n + 1 >= outlen || n >= INT_MAX)
			goto fail;
		out[n++] = (char)c;
	}
	out[n] = '\0';
	return (int)n;

fail:
	out[0] = '\0';
	return -1;
}

/* True when the form-encoded name s[0..len) decodes to key. */
static bool http_name_is(const char *s, size_t len, const char *key)
{
	size_t i = 0, k = 0;

	while (i < len) {
		int c = http_decode_byte(s, len, &i, true);
		if (c < 0 || key[k] == '\0' || (unsigned char)key[k] != c)
			return false;
		k++;
	}
	return key[k] == '\0';
}

int http_query_param(const char *query, size_t query_len, const char *key,
		     char *out, size_t outlen)
{
	const char *p = query, *end;

	if (query == NULL)
		return -1;
	end = query + query_len;
	while (p < end) {
		const char *amp = memchr(p, '&', (size_t)(end - p));
		const char *stop = amp ? amp : end;
		const char *eq = memchr(p, '=', (size_t)(stop - p));
		const char *name_end = eq ? eq : stop;

		if (http_name_is(p, (size_t)(name_end - p), key)) {
			/* "key" without '=' is present with an empty value. */
			if (eq == NULL)
				return http_decode("", 0, true, out, outlen);
			return http_decode(eq + 1, (size_t)(stop - eq - 1), true, out, outlen);
		}
		if (amp == NULL)
			break;
		p = amp + 1;
	}
	return -1;
}

int http_url_decode(const char *s, size_t len, char *out, size_t outlen)
{
	/* Path segments are not form-encoded: '+' is a plus sign there. */
	return http_decode(s, len, false, out, outlen);
}

void http_url_encode(struct buf *b, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '.' || c == '_' || c == '~')
			buf_append(b, s, 1);
		else
			buf_printf(b, "%%%02X", c);
	}
}

/* ---------------------------------------------------------------- responses */

const char *http_status_text(int status)
{
	switch (status) {
	case 101: return "Switching Protocols";
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 411: return "Length Required";
	case 413: return "Content Too Large";
	case 426: return "Upgrade Required";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 503: return "Service Unavailable";
	case 505: return "HTTP Version Not Supported";
	default:  return "Unknown";
	}
}

void http_response(struct buf *out, int status, const char *content_type,
		   const char *body, size_t body_len, bool keep_alive)
{
	/* 1xx and 204 responses have no body and must not carry a length
	 * (RFC 9110 §8.6). */
	bool bodiless = status < 200 || status == 204;

	buf_printf(out, "HTTP/1.1 %d %s\r\n", status, http_status_text(status));
	if (content_type != NULL && !bodiless)
		buf_printf(out, "Content-Type: %s\r\n", content_type);
	if (!bodiless)
		buf_printf(out, "Content-Length: %zu\r\n", body_len);
	/* Answers are live state or carry secrets: never worth caching. */
	buf_appends(out, "Cache-Control: no-store\r\n");
	if (!keep_alive)
		buf_appends(out, "Connection: close\r\n");
	buf_appends(out, "\r\n");
	if (!bodiless && body_len > 0)
		buf_append(out, body, body_len);
}

void http_error(struct buf *out, int status, const char *code, const char *message,
		bool keep_alive)
{
	struct buf body = { 0 };

	if (code == NULL)
		code = "error";
	if (message == NULL)
		message = http_status_text(status);
	buf_appends(&body, "{\"error\":{\"code\":");
	buf_append_json_str(&body, code, strlen(code));
	buf_appends(&body, ",\"message\":");
	buf_append_json_str(&body, message, strlen(message));
	buf_appends(&body, "}}");
	http_response(out, status, "application/json", body.data, body.len, keep_alive);
	buf_free(&body);
}
