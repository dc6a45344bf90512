/* utf8.h -- incremental UTF-8 validation (RFC 3629: no overlongs, no surrogates,
 * nothing above U+10FFFF), so a text message split across fragments fails fast. */
#ifndef HERALD_UTF8_H
#define HERALD_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define UTF8_ACCEPT 0
#define UTF8_REJECT 1

/* state starts at UTF8_ACCEPT. Feeds len bytes; returns the new state:
 * UTF8_REJECT as soon as the input cannot be a prefix of valid UTF-8,
 * UTF8_ACCEPT at a code point boundary, another value inside a sequence. */
uint32_t utf8_feed(uint32_t state, const uint8_t *s, size_t len);
/* True when s is entirely valid UTF-8. */
bool utf8_valid(const uint8_t *s, size_t len);

#endif
