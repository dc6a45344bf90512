/* acl.c -- room names, namespaces, globs, and the subscribe/publish rules
 * that decide which client may use which room (SPEC §4). */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acl.h"
#include "util.h"

/* ---------------------------------------------------------------- rules */

/* Writes "what 'term'" to err; term (n bytes) is cut short if long. */
static void acl_err(char *err, size_t errlen, const char *what, const char *term, size_t n)
{
	if (err == NULL || errlen == 0)
		return;
	if (term != NULL)
		snprintf(err, errlen, "%s '%.*s'", what, (int)MIN(n, 64), term);
	else
		snprintf(err, errlen, "%s", what);
}

static bool acl_is_space(char c)
{
	return c == ' ' || c == '\t';
}

/* Adds the term s (n bytes, already trimmed) to r; -1 when unknown. */
static int acl_rule_add(struct acl_rule *r, const char *s, size_t n, char *err, size_t errlen)
{
	static const struct { const char *name; unsigned flag; } terms[] = {
		{ "public", ACL_PUBLIC },
		{ "authenticated", ACL_AUTHENTICATED },
		{ "owner", ACL_OWNER },
		{ "claim", ACL_CLAIM },
		{ "api", ACL_API },
	};

	for (size_t i = 0; i < ARRAY_SIZE(terms); i++) {
		if (strlen(terms[i].name) == n && memcmp(terms[i].name, s, n) == 0) {
			r->flags |= terms[i].flag;
			return 0;
		}
	}
	if (n > 5 && memcmp(s, "role:", 5) == 0) {
		for (size_t i = 5; i < n; i++) {
			if (acl_is_space(s[i])) {
				acl_err(err, errlen, "bad role name in", s, n);
				return -1;
			}
		}
		r->roles = xrealloc(r->roles, (r->nroles + 1) * sizeof(char *));
		r->roles[r->nroles++] = xstrndup(s + 5, n - 5);
		r->flags |= ACL_ROLE;
		return 0;
	}
	if (n == 5 && memcmp(s, "role:", 5) == 0)
		acl_err(err, errlen, "empty role name in", s, n);
	else
		acl_err(err, errlen, "unknown term", s, n);
	return -1;
}

int acl_rule_parse(const char *text, struct acl_rule *out, char *err, size_t errlen)
{
	const char *p = text;

	memset(out, 0, sizeof(*out));
	if (text == NULL)
		goto empty;
	for (;;) {
		const char *start, *stop, *comma = strchr(p, ',');
		const char *next = comma ? comma : p + strlen(p);

		start = p;
		stop = next;
		while (start < stop && acl_is_space(*start))
			start++;
		while (stop > start && acl_is_space(stop[-1]))
			stop--;
		if (start == stop) {
			if (comma == NULL && p == text)
				goto empty;
			acl_err(err, errlen, "empty term in", text, strlen(text));
			goto fail;
		}
		if (acl_rule_add(out, start, (size_t)(stop - start), err, errlen) < 0)
			goto fail;
		if (comma == NULL)
			break;
		p = comma + 1;
	}
	return 0;

empty:
	acl_err(err, errlen, "empty rule", NULL, 0);
fail:
	acl_rule_free(out);
	return -1;
}

void acl_rule_free(struct acl_rule *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; i < r->nroles; i++)
		free(r->roles[i]);
	free(r->roles);
	memset(r, 0, sizeof(*r));
}

/* ---------------------------------------------------------------- checks */

static bool acl_has_role(const struct acl_rule *rule, const struct acl_subject *subj)
{
	for (size_t i = 0; i < rule->nroles; i++) {
		for (size_t j = 0; j < subj->nroles; j++) {
			if (subj->roles[j] != NULL && strcmp(rule->roles[i], subj->roles[j]) == 0)
				return true;
		}
	}
	return false;
}

static bool acl_has_claim(const struct acl_subject *subj, const char *room)
{
	for (size_t i = 0; i < subj->nrooms; i++) {
		if (acl_glob_match(subj->rooms[i], room))
			return true;
	}
	return false;
}

bool acl_allows(const struct acl_rule *rule, const struct acl_subject *subj,
		const char *room, const char *id)
{
	static const struct acl_subject anonymous;

	if (rule == NULL || room == NULL)
		return false;
	if (subj == NULL)
		subj = &anonymous;
	if (rule->flags & ACL_PUBLIC)
		return true;
	if ((rule->flags & ACL_AUTHENTICATED) && subj->sub != NULL)
		return true;
	/* An empty sub must not own the room "user:" (whose id is empty). */
	if ((rule->flags & ACL_OWNER) && subj->sub != NULL && subj->sub[0] != '\0' &&
	    id != NULL && strcmp(subj->sub, id) == 0)
		return true;
	if ((rule->flags & ACL_CLAIM) && acl_has_claim(subj, room))
		return true;
	if ((rule->flags & ACL_ROLE) && acl_has_role(rule, subj))
		return true;
	return false;
}

/* ---------------------------------------------------------------- names */

bool acl_room_valid(const char *name, size_t len)
{
	if (name == NULL || len == 0 || len > ROOM_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '_' || c == '.' || c == ':' ||
		      c == '@' || c == '-'))
			return false;
	}
	return true;
}

size_t acl_room_namespace(const char *room, const char **id)
{
	const char *colon = strchr(room, ':');

	if (colon == NULL) {
		if (id != NULL)
			*id = room;
		return strlen(room);
	}
	if (id != NULL)
		*id = colon + 1;
	return (size_t)(colon - room);
}

/* Iterative matching with one backtrack point: on a mismatch, the last '*'
 * absorbs one more byte and matching resumes after it. Only the last star
 * needs revisiting (earlier ones can only have matched less), so the worst
 * case is O(len(pattern) * len(s)) with no recursion. */
bool acl_glob_match(const char *pattern, const char *s)
{
	const char *p = pattern, *star = NULL, *resume = NULL;

	if (pattern == NULL || s == NULL)
		return false;
	while (*s != '\0') {
		if (*p == '*') {
			while (*p == '*')
				p++;
			if (*p == '\0')
				return true;
			star = p;
			resume = s;
		} else if (*p != '\0' && (*p == '?' || *p == *s)) {
			p++;
			s++;
		} else if (star != NULL) {
			p = star;
			s = ++resume;
		} else {
			return false;
		}
	}
	while (*p == '*')
		p++;
	return *p == '\0';
}
