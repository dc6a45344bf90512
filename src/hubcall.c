/* hubcall.c -- the requests a worker sends up its hub link, built on
 * worker_expect_reply and worker_hub_send (worker.c; the session fuzz target
 * plays the hub with its own). */
#include <jansson.h>

#include "buf.h"
#include "ipc.h"
#include "worker.h"

int worker_request(struct conn *c, uint64_t tag, const char *json, size_t len,
		   worker_reply_fn fn)
{
	if (!worker.hub.up)
		return -1;
	struct buf b = { 0 };
	size_t m = ipc_begin(&b, IPC_REQUEST);
	ipc_put_u64(&b, worker_expect_reply(c, tag, fn));
	ipc_put_str(&b, json, len);
	ipc_end(&b, m);
	worker_hub_send(&b);
	buf_free(&b);
	return 0;
}

int worker_publish(struct conn *c, uint64_t tag, worker_reply_fn fn, json_t *rooms,
		   const char *event, const char *data, size_t data_len, const char *idem_key,
		   bool from_client)
{
	if (!worker.hub.up)
		return -1;
	struct buf b = { 0 };
	size_t m = ipc_begin(&b, IPC_PUBLISH);
	ipc_put_u64(&b, worker_expect_reply(c, tag, fn));
	ipc_put_u32(&b, (uint32_t)json_array_size(rooms));
	size_t i;
	json_t *room;
	json_array_foreach(rooms, i, room)
		ipc_put_cstr(&b, json_string_value(room));
	ipc_put_cstr(&b, event);
	ipc_put_str(&b, data, data_len);
	ipc_put_cstr(&b, idem_key);
	ipc_put_u8(&b, from_client);
	ipc_end(&b, m);
	worker_hub_send(&b);
	buf_free(&b);
	worker.stats.published++;
	return 0;
}
