/* fuzz_json.c -- libFuzzer target for the JSON input checks of proto.c: the
 * depth pre-scan, parsing, and the raw member lookup, whose result must
 * itself be one complete JSON value. */

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data;
	json_t *v;
	char err[160];
	(void)proto_json_depth(p, size);
	if (proto_parse_object(p, size, 32, JSON_DECODE_INT_AS_REAL, &v, err, sizeof(err)) < 0)
		return 0;
	const char *raw;
	size_t n;
	bool found = proto_member_raw(p, size, "data", &raw, &n);
	if (found != (json_object_get(v, "data") != NULL))
		abort();
	if (found) {
		json_t *d = json_loadb(raw, n, JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL, NULL);
		if (!d || !json_equal(d, json_object_get(v, "data")))
			abort();
		json_decref(d);
	}
	json_decref(v);
	return 0;
}
