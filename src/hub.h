/* hub.h -- the hub process: the only SQLite writer, the sequencer, the room
 * registry and the router of messages to workers. */
#ifndef HERALD_HUB_H
#define HERALD_HUB_H

#include "proc.h"

void hub_main(struct proc_ctx *ctx) __attribute__((noreturn));

#endif
