/* test_acl.c -- unit tests for acl.c: globs, room names, namespaces, rule
 * parsing and the subscribe/publish permission matrix. */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "acl.h"
#include "util.h"
#include "test.h"

static void test_glob(void)
{
	static const struct { const char *pat, *s; bool match; } t[] = {
		{ "race:*", "race:42", true },
		{ "race:*", "race:", true },
		{ "race:*", "race:1:2", true },      /* '*' crosses ':' */
		{ "race:*", "race", false },
		{ "race:*", "horse:1", false },
		{ "race:*", "Race:1", false },        /* case-sensitive */
		{ "race:*", "xrace:1", false },
		{ "*", "", true },
		{ "*", "anything:at:all", true },
		{ "**", "", true },
		{ "**", "x", true },
		{ "a**b", "ab", true },
		{ "a**b", "axyzb", true },
		{ "a?c", "abc", true },
		{ "a?c", "a:c", true },
		{ "a?c", "ac", false },
		{ "a?c", "abbc", false },
		{ "a?c", "abcd", false },
		{ "?", "", false },
		{ "?", "x", true },
		{ "??", "x", false },
		{ "*?", "", false },
		{ "*?", "x", true },
		{ "?*", "xyz", true },
		{ "abcdef", "abc", false },           /* pattern longer than input */
		{ "abc?", "abc", false },
		{ "abc*", "abc", true },
		{ "abc", "abcdef", false },
		{ "", "", true },
		{ "", "a", false },
		{ "a", "", false },
		{ "*:*", "race:1", true },
		{ "*:*", "race", false },
		{ "market:*:odds", "market:1:odds", true },
		{ "market:*:odds", "market:1:odds:x", false },
		{ "market:*:odds", "market::odds", true },
		{ "*a", "aaa", true },
		{ "*ab", "aaab", true },              /* needs backtracking */
		{ "*ab", "abaa", false },
		{ "a*b*c", "axbyc", true },
		{ "a*b*c", "abc", true },
		{ "a*b*c", "axbyd", false },
		{ "a*b*c", "acb", false },
		{ "*x*y*", "__x__y__", true },
		{ "*x*y*", "__y__x__", false },
		{ "user:alice", "user:alice", true },
		{ "user:alice", "user:alicex", false },
	};

	for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
		bool got = acl_glob_match(t[i].pat, t[i].s);
		if (got != t[i].match)
			fprintf(stderr, "glob \"%s\" vs \"%s\": got %d\n", t[i].pat, t[i].s, got);
		CHECK(got == t[i].match);
	}
	CHECK(!acl_glob_match(NULL, "a"));
	CHECK(!acl_glob_match("a", NULL));
}

static void test_glob_pathological(void)
{
	/* Many stars against a long near-miss: must stay polynomial, and cheap. */
	size_t n = 100000;
	char *s = malloc(n + 1);
	clock_t t0 = clock();

	memset(s, 'a', n);
	s[n] = '\0';
	CHECK(!acl_glob_match("*a*a*a*a*a*a*a*a*a*a*b", s));
	CHECK(acl_glob_match("*a*a*a*a*a*a*a*a*a*a*", s));
	CHECK(!acl_glob_match("a*a*a*a*a*a*a*a*a*a*?b", s));
	s[n - 1] = 'b';
	CHECK(acl_glob_match("*a*a*a*a*a*a*a*a*a*a*b", s));
	CHECK((double)(clock() - t0) / CLOCKS_PER_SEC < 2.0);
	free(s);
}

static void test_room_valid(void)
{
	char name[ROOM_MAX + 2];

	CHECK(acl_room_valid("race:42", 7));
	CHECK(acl_room_valid("global", 6));
	CHECK(acl_room_valid("a", 1));
	CHECK(acl_room_valid("user:alice@example.com", 22));
	CHECK(acl_room_valid("A-Z_a-z.0-9:@", 13));
	CHECK(acl_room_valid("workflow:wf_01H-x.y", 19));
	CHECK(acl_room_valid(":", 1));

	memset(name, 'r', sizeof(name));
	CHECK(acl_room_valid(name, ROOM_MAX));
	CHECK(!acl_room_valid(name, ROOM_MAX + 1));
	CHECK(acl_room_valid(name, 200));
	CHECK(!acl_room_valid(name, 201));

	CHECK(!acl_room_valid("", 0));
	CHECK(!acl_room_valid(NULL, 0));
	CHECK(!acl_room_valid(NULL, 3));
	CHECK(!acl_room_valid("race 42", 7));
	CHECK(!acl_room_valid("race/42", 7));
	CHECK(!acl_room_valid("race:*", 6));
	CHECK(!acl_room_valid("race:?", 6));
	CHECK(!acl_room_valid("race#1", 6));
	CHECK(!acl_room_valid("caf\xc3\xa9", 5));
	CHECK(!acl_room_valid("race\n", 5));
	CHECK(!acl_room_valid("ra\0ce", 5));         /* NUL inside the length */
	CHECK(!acl_room_valid("\"x\"", 3));
	/* Only len bytes are looked at. */
	CHECK(acl_room_valid("race:1 trailing", 6));
}

static void test_namespace(void)
{
	const char *id = NULL;

	CHECK_EQ_INT(acl_room_namespace("race:42", &id), 4);
	CHECK_EQ_STR(id, "42");
	CHECK_EQ_INT(acl_room_namespace("global", &id), 6);
	CHECK_EQ_STR(id, "global");
	CHECK_EQ_INT(acl_room_namespace("user:alice@example.com", &id), 4);
	CHECK_EQ_STR(id, "alice@example.com");
	CHECK_EQ_INT(acl_room_namespace("a:b:c", &id), 1);
	CHECK_EQ_STR(id, "b:c");
	CHECK_EQ_INT(acl_room_namespace("user:", &id), 4);
	CHECK_EQ_STR(id, "");
	CHECK_EQ_INT(acl_room_namespace(":x", &id), 0);
	CHECK_EQ_STR(id, "x");
	CHECK_EQ_INT(acl_room_namespace("market:7", NULL), 6);
}

static void test_rule_parse(void)
{
	struct acl_rule r;
	char err[128];

	CHECK_EQ_INT(acl_rule_parse("public", &r, err, sizeof(err)), 0);
	CHECK_EQ_INT(r.flags, ACL_PUBLIC);
	CHECK_EQ_INT(r.nroles, 0);
	acl_rule_free(&r);

	CHECK_EQ_INT(acl_rule_parse("api", &r, err, sizeof(err)), 0);
	CHECK_EQ_INT(r.flags, ACL_API);
	acl_rule_free(&r);

	CHECK_EQ_INT(acl_rule_parse("authenticated,role:admin", &r, err, sizeof(err)), 0);
	CHECK_EQ_INT(r.flags, ACL_AUTHENTICATED | ACL_ROLE);
	CHECK_EQ_INT(r.nroles, 1);
	if (r.nroles == 1)
		CHECK_EQ_STR(r.roles[0], "admin");
	acl_rule_free(&r);
	CHECK(r.roles == NULL && r.nroles == 0 && r.flags == 0);

	CHECK_EQ_INT(acl_rule_parse("  owner ,\tclaim  ", &r, err, sizeof(err)), 0);
	CHECK_EQ_INT(r.flags, ACL_OWNER | ACL_CLAIM);
	acl_rule_free(&r);

	CHECK_EQ_INT(acl_rule_parse("role:admin,role:ops, role:support", &r, err, sizeof(err)), 0);
	CHECK_EQ_INT(r.flags, ACL_ROLE);
	CHECK_EQ_INT(r.nroles, 3);
	if (r.nroles == 3) {
		CHECK_EQ_STR(r.roles[0], "admin");
		CHECK_EQ_STR(r.roles[1], "ops");
		CHECK_EQ_STR(r.roles[2], "support");
	}
	acl_rule_free(&r);

	CHECK_EQ_INT(acl_rule_parse("public,authenticated,owner,claim,role:x:y,api", &r,
				    err, sizeof(err)), 0);
	CHECK_EQ_INT(r.flags, ACL_PUBLIC | ACL_AUTHENTICATED | ACL_OWNER | ACL_CLAIM |
		     ACL_ROLE | ACL_API);
	if (r.nroles == 1)
		CHECK_EQ_STR(r.roles[0], "x:y");
	acl_rule_free(&r);

	/* Repeated terms are harmless. */
	CHECK_EQ_INT(acl_rule_parse("public,public", &r, NULL, 0), 0);
	CHECK_EQ_INT(r.flags, ACL_PUBLIC);
	acl_rule_free(&r);
}

static void test_rule_errors(void)
{
	static const struct { const char *text, *msg; } t[] = {
		{ "", "empty rule" },
		{ "   ", "empty rule" },
		{ "public,", "empty term" },
		{ ",public", "empty term" },
		{ "public,,owner", "empty term" },
		{ "public, ,owner", "empty term" },
		{ "foo", "unknown term 'foo'" },
		{ "public,everyone", "unknown term 'everyone'" },
		{ "Public", "unknown term 'Public'" },
		{ "public;owner", "unknown term 'public;owner'" },
		{ "public owner", "unknown term 'public owner'" },
		{ "role", "unknown term 'role'" },
		{ "role:", "empty role name in 'role:'" },
		{ "authenticated, role:", "empty role name in 'role:'" },
		{ "role:ad min", "bad role name in 'role:ad min'" },
		{ "api:x", "unknown term 'api:x'" },
	};
	struct acl_rule r;
	char err[128];

	for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
		err[0] = '\0';
		CHECK_EQ_INT(acl_rule_parse(t[i].text, &r, err, sizeof(err)), -1);
		if (strstr(err, t[i].msg) == NULL)
			fprintf(stderr, "rule \"%s\": error \"%s\", expected \"%s\"\n",
				t[i].text, err, t[i].msg);
		CHECK(strstr(err, t[i].msg) != NULL);
		CHECK(r.flags == 0 && r.roles == NULL && r.nroles == 0);
		acl_rule_free(&r);
	}

	/* A role parsed before the error is released (valgrind checks). */
	CHECK_EQ_INT(acl_rule_parse("role:a,role:b,bogus", &r, err, sizeof(err)), -1);
	CHECK(r.roles == NULL && r.nroles == 0);
	/* No error buffer, or a tiny one, is fine. */
	CHECK_EQ_INT(acl_rule_parse("bogus", &r, NULL, 0), -1);
	CHECK_EQ_INT(acl_rule_parse("bogus", &r, err, 4), -1);
	CHECK_EQ_STR(err, "unk");
	CHECK_EQ_INT(acl_rule_parse(NULL, &r, err, sizeof(err)), -1);
	/* A long unknown term is named, cut short. */
	{
		char longterm[300];
		memset(longterm, 'z', sizeof(longterm) - 1);
		longterm[sizeof(longterm) - 1] = '\0';
		CHECK_EQ_INT(acl_rule_parse(longterm, &r, err, sizeof(err)), -1);
		CHECK(strncmp(err, "unknown term 'zzz", 17) == 0);
	}
}

/* ---------------------------------------------------------------- matrix */

/* The subject's arrays are char *const (jwt_claims owns mutable strings), so
 * the test strings live in writable arrays rather than string literals. */
static char s_market_all[] = "market:*", s_admin[] = "admin";
static char s_admin_cap[] = "Admin", s_administrator[] = "administrator", s_empty[] = "";
static char s_market[] = "market", s_race_one[] = "race:?", s_alice_sub[] = "user:alice:*";
static char *const alice_rooms[] = { s_market_all };
static char *const bob_roles[] = { s_admin };
static char *const eve_roles[] = { s_admin_cap, s_administrator, s_empty };
static char *const eve_rooms[] = { s_market, s_race_one, s_alice_sub };

enum { ANON, ALICE, ALICE_M, BOB_ADMIN, NSUBJ };

static const struct acl_subject subjects[NSUBJ] = {
	[ANON] = { 0 },
	[ALICE] = { .sub = "alice" },
	[ALICE_M] = { .sub = "alice", .rooms = alice_rooms, .nrooms = 1 },
	[BOB_ADMIN] = { .sub = "bob", .roles = bob_roles, .nroles = 1 },
};

static bool allows(const char *rule_text, const struct acl_subject *subj, const char *room)
{
	struct acl_rule r;
	const char *id;
	bool ok;
	char err[128];

	if (acl_rule_parse(rule_text, &r, err, sizeof(err)) < 0) {
		fprintf(stderr, "rule \"%s\": %s\n", rule_text, err);
		return false;
	}
	acl_room_namespace(room, &id);
	ok = acl_allows(&r, subj, room, id);
	acl_rule_free(&r);
	return ok;
}

static void test_matrix(void)
{
	static const struct {
		const char *rule, *room;
		bool want[NSUBJ];   /* anonymous, alice, alice+rooms, bob+admin */
	} t[] = {
		{ "public",           "user:alice", { 1, 1, 1, 1 } },
		{ "public",           "global",     { 1, 1, 1, 1 } },
		{ "authenticated",    "user:alice", { 0, 1, 1, 1 } },
		{ "authenticated",    "global",     { 0, 1, 1, 1 } },
		{ "owner",            "user:alice", { 0, 1, 1, 0 } },
		{ "owner",            "user:bob",   { 0, 0, 0, 1 } },
		{ "owner",            "user:carol", { 0, 0, 0, 0 } },
		{ "owner",            "user:alicex",{ 0, 0, 0, 0 } },
		{ "owner",            "alice",      { 0, 1, 1, 0 } },   /* bare room: id is the name */
		{ "claim",            "market:7",   { 0, 0, 1, 0 } },
		{ "claim",            "market:",    { 0, 0, 1, 0 } },
		{ "claim",            "market",     { 0, 0, 0, 0 } },
		{ "claim",            "race:1",     { 0, 0, 0, 0 } },
		{ "claim",            "user:alice", { 0, 0, 0, 0 } },
		{ "role:admin",       "admin",      { 0, 0, 0, 1 } },
		{ "role:admin",       "user:alice", { 0, 0, 0, 1 } },
		{ "role:ops",         "admin",      { 0, 0, 0, 0 } },
		{ "role:ops,role:admin", "admin",   { 0, 0, 0, 1 } },
		{ "owner,role:admin", "user:alice", { 0, 1, 1, 1 } },
		{ "owner,role:admin", "user:bob",   { 0, 0, 0, 1 } },
		{ "owner,role:admin", "user:carol", { 0, 0, 0, 1 } },
		{ "claim,role:admin", "market:7",   { 0, 0, 1, 1 } },
		{ "api",              "user:alice", { 0, 0, 0, 0 } },
		{ "api",              "global",     { 0, 0, 0, 0 } },
		{ "api",              "market:7",   { 0, 0, 0, 0 } },
		{ "api",              "admin",      { 0, 0, 0, 0 } },
		{ "api,authenticated","global",     { 0, 1, 1, 1 } },
	};
	static const char *const names[NSUBJ] = { "anonymous", "alice", "alice+rooms", "bob+admin" };

	for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
		for (int s = 0; s < NSUBJ; s++) {
			bool got = allows(t[i].rule, &subjects[s], t[i].room);
			if (got != t[i].want[s])
				fprintf(stderr, "rule \"%s\" room %s subject %s: got %d\n",
					t[i].rule, t[i].room, names[s], got);
			CHECK(got == t[i].want[s]);
		}
	}
}

static void test_allows_edges(void)
{
	struct acl_rule r;
	struct acl_subject eve = { .sub = "eve", .roles = eve_roles, .nroles = 3,
				   .rooms = eve_rooms, .nrooms = 3 };
	struct acl_subject empty = { .sub = "" };

	/* Role names and globs are compared exactly. */
	CHECK(!allows("role:admin", &eve, "admin"));
	CHECK(!allows("claim", &eve, "market:1"));
	CHECK(allows("claim", &eve, "race:7"));
	CHECK(!allows("claim", &eve, "race:77"));
	CHECK(!allows("claim", &eve, "user:alice"));
	CHECK(allows("claim", &eve, "user:alice:inbox"));

	/* An empty sub is authenticated but owns nothing, not even "user:". */
	CHECK(allows("authenticated", &empty, "user:"));
	CHECK(!allows("owner", &empty, "user:"));

	/* NULL subject is anonymous; NULL rule or room admits nobody. */
	CHECK_EQ_INT(acl_rule_parse("public", &r, NULL, 0), 0);
	CHECK(acl_allows(&r, NULL, "global", "global"));
	CHECK(!acl_allows(NULL, &subjects[BOB_ADMIN], "global", "global"));
	CHECK(!acl_allows(&r, &subjects[ALICE], NULL, NULL));
	acl_rule_free(&r);
	CHECK_EQ_INT(acl_rule_parse("authenticated,owner,claim,role:admin", &r, NULL, 0), 0);
	CHECK(!acl_allows(&r, NULL, "user:alice", "alice"));
	/* owner with a NULL id admits nobody. */
	acl_rule_free(&r);
	CHECK_EQ_INT(acl_rule_parse("owner", &r, NULL, 0), 0);
	CHECK(!acl_allows(&r, &subjects[ALICE], "user:alice", NULL));
	acl_rule_free(&r);
	acl_rule_free(NULL);
	/* A zeroed rule admits nobody. */
	memset(&r, 0, sizeof(r));
	CHECK(!acl_allows(&r, &subjects[BOB_ADMIN], "global", "global"));
}

TEST_MAIN("acl",
	TEST(test_glob),
	TEST(test_glob_pathological),
	TEST(test_room_valid),
	TEST(test_namespace),
	TEST(test_rule_parse),
	TEST(test_rule_errors),
	TEST(test_matrix),
	TEST(test_allows_edges))
