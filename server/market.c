/*
 * The market's vocabulary and the published books: see market.h.
 */
#include "server/market.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ledger/crypto.h"

const char *const market_precisions[] = { "fp64", "fp32", "tf32", "bf16", "fp16",
                                          "fp8",  "int8", "int4", NULL };
_Static_assert(sizeof market_precisions / sizeof market_precisions[0] == MX_NPREC + 1,
               "one name per precision");

/* The eight national hub nodes of "East Data, West Compute" (the seed document, figure 14),
 * listed once: the table and the id list below are both made from it. */
#define REGIONS(X)                                                                                 \
    X("jingjinji", "Beijing-Tianjin-Hebei", "京津冀")                                              \
    X("yangtze", "Yangtze River Delta", "长三角")                                                  \
    X("greater-bay", "Guangdong-Hong Kong-Macao Greater Bay Area", "粤港澳大湾区")                 \
    X("chengyu", "Chengdu-Chongqing", "成渝")                                                      \
    X("inner-mongolia", "Inner Mongolia", "内蒙古")                                                \
    X("guizhou", "Guizhou", "贵州")                                                                \
    X("gansu", "Gansu", "甘肃")                                                                    \
    X("ningxia", "Ningxia", "宁夏")
#define REGION_ROW(id, en, zh) { id, en, zh },
#define REGION_ID(id, en, zh)  id,

const struct market_region market_regions[] = { REGIONS(REGION_ROW) };
const size_t market_nregions = sizeof market_regions / sizeof market_regions[0];
_Static_assert(sizeof market_regions / sizeof market_regions[0] <= MX_MAX_REGIONS,
               "the engine takes at most 64 regions");

const char *const market_region_ids[] = { REGIONS(REGION_ID) NULL };

int market_precision_index(const char *name)
{
    for (int i = 0; market_precisions[i] != NULL; i++)
        if (strcmp(market_precisions[i], name) == 0)
            return i;
    return -1;
}

int market_region_index(const char *id)
{
    for (size_t i = 0; i < market_nregions; i++)
        if (strcmp(market_regions[i].id, id) == 0)
            return (int)i;
    return -1;
}

uint64_t market_owner_number(const char *identity_id)
{
    uint8_t h[32];
    cpx_sha256(identity_id, strlen(identity_id), h);
    uint64_t n = 0;
    for (int i = 0; i < 8; i++)
        n = n << 8 | h[i];
    return n ? n : 1;
}

void market_id_format(char out[MARKET_ID_MAX], const char *prefix, uint64_t n)
{
    snprintf(out, MARKET_ID_MAX, "%s%012" PRIu64, prefix, n);
}

uint64_t market_id_parse(const char *s, const char *prefix)
{
    size_t p = strlen(prefix);
    if (strncmp(s, prefix, p) != 0)
        return 0;
    s += p;
    size_t n = strlen(s);
    if (n < 12 || n > 19)
        return 0;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    /* Only the canonical spelling names an id: exactly 12 digits, or more without a leading 0;
     * and ids are PostgreSQL bigints. */
    if ((n > 12 && s[0] == '0') || v > INT64_MAX)
        return 0;
    return v;
}

void market_snapshot_init(struct market_snapshot *s)
{
    memset(s->side, 0, sizeof s->side);
    pthread_rwlock_init(&s->lock, NULL);
}

void market_snapshot_free(struct market_snapshot *s)
{
    pthread_rwlock_destroy(&s->lock);
}

void market_snapshot_publish(struct market_snapshot *s, const mx_engine *e)
{
    pthread_rwlock_wrlock(&s->lock);
    for (unsigned p = 0; p < MX_NPREC; p++)
        for (unsigned r = 0; r < market_nregions; r++)
            for (unsigned side = 0; side < 2; side++) {
                struct market_book_side *b = &s->side[p][r][side];
                b->n = (uint32_t)mx_depth(e, p, r, (mx_side)side, b->levels, MARKET_DEPTH_MAX);
            }
    pthread_rwlock_unlock(&s->lock);
}

size_t market_snapshot_read(struct market_snapshot *s, unsigned precision, unsigned region,
                            mx_side side, mx_level_info *out, size_t max)
{
    if (precision >= MX_NPREC || region >= market_nregions || (unsigned)side > 1)
        return 0;
    pthread_rwlock_rdlock(&s->lock);
    const struct market_book_side *b = &s->side[precision][region][side];
    size_t n = b->n < max ? b->n : max;
    memcpy(out, b->levels, n * sizeof *out);
    pthread_rwlock_unlock(&s->lock);
    return n;
}
