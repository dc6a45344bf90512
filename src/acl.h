/* acl.h -- rooms, namespaces and who may subscribe or publish (SPEC §4). */
#ifndef HERALD_ACL_H
#define HERALD_ACL_H

#include <stdbool.h>
#include <stddef.h>

#define ROOM_MAX 200

/* Rule terms; a rule is satisfied when any of its terms is. */
enum {
	ACL_PUBLIC        = 1 << 0,  /* everyone, anonymous too */
	ACL_AUTHENTICATED = 1 << 1,  /* any valid token */
	ACL_OWNER         = 1 << 2,  /* room id equals the token's sub */
	ACL_CLAIM         = 1 << 3,  /* a glob of the token's rooms claim matches the room */
	ACL_ROLE          = 1 << 4,  /* the token's roles hold one of rule.roles */
	ACL_API           = 1 << 5,  /* publish: server API only (always allowed for the API) */
};

struct acl_rule {
	unsigned flags;
	char **roles;
	size_t nroles;
};

/* Who is asking: NULL sub means anonymous. Arrays are borrowed. */
struct acl_subject {
	const char *sub;
	char *const *roles;
	size_t nroles;
	char *const *rooms;   /* globs from the token's rooms claim */
	size_t nrooms;
};

/* Parses "public", "authenticated,role:admin", "api", ... into out.
 * Returns 0, or -1 with a message in err. out is freed with acl_rule_free. */
int acl_rule_parse(const char *text, struct acl_rule *out, char *err, size_t errlen);
void acl_rule_free(struct acl_rule *r);

/* True when subject may act on room (full name) under rule. id is the part
 * after the namespace's colon (the whole name for bare rooms). ACL_API never
 * admits a client. */
bool acl_allows(const struct acl_rule *rule, const struct acl_subject *subj,
		const char *room, const char *id);

/* True when name is a valid room name: 1..ROOM_MAX bytes of [A-Za-z0-9_.:@-]. */
bool acl_room_valid(const char *name, size_t len);

/* Splits a room name into namespace and id: "race:42" -> ns "race" (len 4),
 * id "42"; "global" -> ns "global", id "global". Returns the namespace length. */
size_t acl_room_namespace(const char *room, const char **id);

/* Glob match with '*' (any run, possibly empty) and '?' (one byte). */
bool acl_glob_match(const char *pattern, const char *s);

#endif
