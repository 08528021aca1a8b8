/* lfu.c — frequency buckets for the LFU policy (see lfu.h).
 *
 *   first                                                      (bucket list, by count)
 *     v
 *   [count 1: e7 e2 e9] <-> [count 2: e4] <-> [count 5: e1 e3]
 *         victim = e7 ^                 touch(e4): count 3 does not exist and e4 is alone,
 *                                       so its bucket's count just becomes 3
 *
 * touch(id) moves id from bucket c to bucket c + 1, creating that bucket right after c
 * when it does not exist (or relabelling c when id is its only entry); a bucket left
 * empty is unlinked and freed. Every operation is a few link updates.
 */
#include "core/lfu.h"

#include <assert.h>
#include <string.h>

void
ml_lfu_init(ml_lfu *l)
{
    memset(l, 0, sizeof(*l));
    l->free_head = ML_NIL;
    l->first = l->last = ML_NIL;
}

void
ml_lfu_free(ml_lfu *l, const ml_alloc *a)
{
    a->free(a->ctx, l->b);
    a->free(a->ctx, l->bucket_of);
    ml_lfu_init(l);
}

int
ml_lfu_reserve(ml_lfu *l, const ml_alloc *a, uint32_t entry_cap)
{
    if (entry_cap > l->side_cap) {
        if (ml_grow(a, (void **)&l->bucket_of, sizeof(uint32_t), entry_cap) != ML_OK) {
            return ML_ERR_NOMEM;
        }
        l->side_cap = entry_cap;
    }
    if (entry_cap > l->cap) {
        if (ml_grow(a, (void **)&l->b, sizeof(ml_lfu_bucket), entry_cap) != ML_OK) {
            return ML_ERR_NOMEM;
        }
        l->cap = entry_cap;
    }
    return ML_OK;
}

static uint32_t
bucket_new(ml_lfu *l, uint64_t count)
{
    uint32_t id;
    if (l->free_head != ML_NIL) {
        id = l->free_head;
        l->free_head = l->b[id].next;
    }
    else {
        assert(l->top < l->cap);   /* buckets <= entries <= cap */
        id = l->top++;
    }
    l->b[id].count = count;
    l->b[id].keys = ML_LIST_EMPTY;
    l->b[id].prev = l->b[id].next = ML_NIL;
    return id;
}

/* Links bucket nb right after bucket `after` (ML_NIL: at the front). */
static void
bucket_link_after(ml_lfu *l, uint32_t after, uint32_t nb)
{
    uint32_t next = after == ML_NIL ? l->first : l->b[after].next;
    l->b[nb].prev = after;
    l->b[nb].next = next;
    if (next != ML_NIL) {
        l->b[next].prev = nb;
    }
    else {
        l->last = nb;
    }
    if (after == ML_NIL) {
        l->first = nb;
    }
    else {
        l->b[after].next = nb;
    }
}

static void
bucket_unlink_free(ml_lfu *l, uint32_t id)
{
    uint32_t prev = l->b[id].prev, next = l->b[id].next;
    if (prev != ML_NIL) {
        l->b[prev].next = next;
    }
    else {
        l->first = next;
    }
    if (next != ML_NIL) {
        l->b[next].prev = prev;
    }
    else {
        l->last = prev;
    }
    l->b[id].next = l->free_head;
    l->free_head = id;
}

void
ml_lfu_insert(ml_lfu *l, ml_entry *ents, uint32_t id)
{
    uint32_t b = l->first;
    if (b == ML_NIL || l->b[b].count != 1) {
        b = bucket_new(l, 1);
        bucket_link_after(l, ML_NIL, b);
    }
    ml_list_push_back(&l->b[b].keys, ents, ML_LINK_POLICY, id);
    l->bucket_of[id] = b;
}

void
ml_lfu_touch(ml_lfu *l, ml_entry *ents, uint32_t id)
{
    uint32_t b = l->bucket_of[id];
    uint32_t next = l->b[b].next;
    if (l->b[b].count >= ML_LFU_MAX_COUNT) {
        /* saturated: the count stays, the use still makes it the most recent of its bucket */
        ml_list_unlink(&l->b[b].keys, ents, ML_LINK_POLICY, id);
        ml_list_push_back(&l->b[b].keys, ents, ML_LINK_POLICY, id);
        return;
    }
    uint64_t count = l->b[b].count + 1;
    if (next == ML_NIL || l->b[next].count != count) {
        if (l->b[b].keys.head == id && l->b[b].keys.tail == id) {
            l->b[b].count = count;   /* alone: relabel the bucket */
            return;
        }
        next = bucket_new(l, count);
        bucket_link_after(l, b, next);
    }
    ml_list_unlink(&l->b[b].keys, ents, ML_LINK_POLICY, id);
    ml_list_push_back(&l->b[next].keys, ents, ML_LINK_POLICY, id);
    l->bucket_of[id] = next;
    if (l->b[b].keys.head == ML_NIL) {
        bucket_unlink_free(l, b);
    }
}

void
ml_lfu_remove(ml_lfu *l, ml_entry *ents, uint32_t id)
{
    uint32_t b = l->bucket_of[id];
    ml_list_unlink(&l->b[b].keys, ents, ML_LINK_POLICY, id);
    if (l->b[b].keys.head == ML_NIL) {
        bucket_unlink_free(l, b);
    }
}

uint32_t
ml_lfu_victim(const ml_lfu *l)
{
    return l->first == ML_NIL ? ML_NIL : l->b[l->first].keys.head;
}

uint64_t
ml_lfu_count(const ml_lfu *l, uint32_t id)
{
    return l->b[l->bucket_of[id]].count;
}

void
ml_lfu_reset(ml_lfu *l)
{
    l->top = 0;
    l->free_head = ML_NIL;
    l->first = l->last = ML_NIL;
}

void
ml_lfu_append(ml_lfu *l, ml_entry *ents, uint32_t id, uint64_t count)
{
    uint32_t last = l->last;
    if (last == ML_NIL || l->b[last].count != count) {
        assert(last == ML_NIL || l->b[last].count < count);
        uint32_t nb = bucket_new(l, count);
        bucket_link_after(l, last, nb);
        last = nb;
    }
    ml_list_push_back(&l->b[last].keys, ents, ML_LINK_POLICY, id);
    l->bucket_of[id] = last;
}
