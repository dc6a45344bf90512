/* courier.h -- the courier process: webhook delivery with libcurl. */
#ifndef HERALD_COURIER_H
#define HERALD_COURIER_H

#include "proc.h"

/* Runs the courier until the master goes or stops it; never returns. */
void courier_main(struct proc_ctx *ctx) __attribute__((noreturn));

#endif
