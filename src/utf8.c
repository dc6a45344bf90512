/* utf8.c -- incremental UTF-8 validation as a small DFA over byte classes, with
 * a word-at-a-time skip over ASCII runs, which is what most messages are. */
#include "utf8.h"

#include <string.h>

/* Byte classes: bytes that the automaton never needs to tell apart share one.
 * Continuation bytes are split where a lead byte restricts its second byte
 * (E0: A0..BF, ED: 80..9F, F0: 90..BF, F4: 80..8F). */
enum {
	C_ASCII,   /* 00..7F */
	C_C80,     /* 80..8F */
	C_C90,     /* 90..9F */
	C_CA0,     /* A0..BF */
	C_BAD,     /* C0, C1 (overlong 2-byte), F5..FF (above U+10FFFF) */
	C_L2,      /* C2..DF */
	C_E0,      /* E0: second byte A0..BF, else overlong */
	C_L3,      /* E1..EC, EE, EF */
	C_ED,      /* ED: second byte 80..9F, else a surrogate */
	C_F0,      /* F0: second byte 90..BF, else overlong */
	C_L4,      /* F1..F3 */
	C_F4,      /* F4: second byte 80..8F, else above U+10FFFF */
	C_COUNT
};

static const uint8_t utf8_class[256] = {
	0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  /* 00..0F */
	0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  /* 10..1F */
	0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  /* 20..2F */
	0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  /* 30..3F */
	0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  /* 40..4F */
	0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  /* 50..5F */
	0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  /* 60..6F */
	0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  /* 70..7F */
	1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  /* 80..8F */
	2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  /* 90..9F */
	3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  /* A0..AF */
	3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  /* B0..BF */
	4,  4,  5,  5,  5,  5,  5,  5,  5,  5,  5,  5,  5,  5,  5,  5,  /* C0..CF */
	5,  5,  5,  5,  5,  5,  5,  5,  5,  5,  5,  5,  5,  5,  5,  5,  /* D0..DF */
	6,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  8,  7,  7,  /* E0..EF */
	9, 10, 10, 10, 11,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  /* F0..FF */
};

/* States: UTF8_ACCEPT (0) and UTF8_REJECT (1) are fixed by utf8.h; the others
 * say what the next byte must be. REJECT is absorbing. */
enum {
	S_OK = UTF8_ACCEPT,
	S_NO = UTF8_REJECT,
	S_1,       /* one more continuation byte */
	S_2,       /* two more */
	S_3,       /* three more */
	S_E0,      /* after E0 */
	S_ED,      /* after ED */
	S_F0,      /* after F0 */
	S_F4,      /* after F4 */
	S_COUNT
};

static const uint8_t utf8_next[S_COUNT][C_COUNT] = {
	/*         ASCII C80   C90   CA0   BAD   L2    E0    L3    ED    F0    L4    F4 */
	[S_OK] = { S_OK, S_NO, S_NO, S_NO, S_NO, S_1,  S_E0, S_2,  S_ED, S_F0, S_3,  S_F4 },
	[S_NO] = { S_NO, S_NO, S_NO, S_NO, S_NO, S_NO, S_NO, S_NO, S_NO, S_NO, S_NO, S_NO },
	[S_1]  = { S_NO, S_OK, S_OK, S_OK, S_NO, S_NO, S_NO, S_NO, S_NO, S_NO, S_NO, S_NO },
	[S_2]  = { S_NO, S_1,  S_1,  S_1,  S_NO, S_NO, S_NO, S_NO, S_NO, S_NO, S_NO, S_NO },
	[S_3]  = { S_NO, S_2,  S_2,  S_2,  S_NO, S_NO, S_NO, S_NO, S_NO, S_NO, S_NO, S_NO },
	[S_E0] = { S_NO, S_NO, S_NO, S_1,  S_NO, S_NO, S_NO, S_NO, S_NO, S_NO, S_NO, S_NO },
	[S_ED] = { S_NO, S_1,  S_1,  S_NO, S_NO, S_NO, S_NO, S_NO, S_NO, S_NO, S_NO, S_NO },
	[S_F0] = { S_NO, S_NO, S_2,  S_2,  S_NO, S_NO, S_NO, S_NO, S_NO, S_NO, S_NO, S_NO },
	[S_F4] = { S_NO, S_2,  S_NO, S_NO, S_NO, S_NO, S_NO, S_NO, S_NO, S_NO, S_NO, S_NO },
};

#define ASCII_MASK 0x8080808080808080ULL

uint32_t utf8_feed(uint32_t state, const uint8_t *s, size_t len)
{
	size_t i = 0;

	if (state >= S_COUNT)
		return UTF8_REJECT;    /* not a state this module produced */
	while (i < len) {
		if (state == UTF8_ACCEPT) {
			/* Between code points: skip ASCII eight bytes at a time
			 * (memcpy, as s has no alignment guarantee). */
			for (; len - i >= 8; i += 8) {
				uint64_t w;
				memcpy(&w, s + i, 8);
				if (w & ASCII_MASK)
					break;
			}
			while (i < len && s[i] < 0x80)
				i++;
			if (i == len)
				break;
		}
		state = utf8_next[state][utf8_class[s[i++]]];
		if (state == UTF8_REJECT)
			break;    /* fail fast: nothing after this can repair it */
	}
	return state;
}

bool utf8_valid(const uint8_t *s, size_t len)
{
	return utf8_feed(UTF8_ACCEPT, s, len) == UTF8_ACCEPT;
}
