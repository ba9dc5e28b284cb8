/*
 * libraft's segment checksum, eight bytes at a time (see rq_raftcrc.h).
 *
 * Slicing by 8 for a CRC that runs most significant bit first: table k
 * holds the CRC of a byte followed by k zero bytes, so eight bytes fold
 * into the remainder with eight independent look-ups instead of eight
 * dependent ones. The first four bytes are xored into the remainder (read
 * big-endian: the first byte meets its top bits); the last four are looked
 * up alone.
 */
#include "rq_raftcrc.h"

#include <pthread.h>

#define POLY 0x04c11db7u

static uint32_t table[8][256];
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static void table_build(void)
{
    for (uint32_t b = 0; b < 256; b++) {
        uint32_t crc = b << 24;
        for (int i = 0; i < 8; i++) {
            crc = (crc & 0x80000000u) != 0 ? (crc << 1) ^ POLY : crc << 1;
        }
        table[0][b] = crc;
    }
    for (int k = 1; k < 8; k++) {
        for (uint32_t b = 0; b < 256; b++) {
            uint32_t prev = table[k - 1][b];
            table[k][b] = (prev << 8) ^ table[0][prev >> 24];
        }
    }
}

uint32_t rq_raftcrc(const void *buf, size_t len, uint32_t init)
{
    const uint8_t *p = buf;
    uint32_t crc = init;

    pthread_once(&table_once, table_build);
    while (len >= 8) {
        crc ^= (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
               (uint32_t)p[2] << 8 | (uint32_t)p[3];
        crc = table[7][crc >> 24] ^ table[6][(crc >> 16) & 0xff] ^
              table[5][(crc >> 8) & 0xff] ^ table[4][crc & 0xff] ^
              table[3][p[4]] ^ table[2][p[5]] ^ table[1][p[6]] ^ table[0][p[7]];
        p += 8;
        len -= 8;
    }
    while (len-- > 0) {
        crc = (crc << 8) ^ table[0][(crc >> 24) ^ *p++];
    }
    return crc;
}

unsigned __wrap_byteCrc32(const void *buf, size_t size, unsigned init)
{
    return rq_raftcrc(buf, size, init);
}
