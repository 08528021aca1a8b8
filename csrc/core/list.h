/* list.h — intrusive doubly linked lists of entries, by entry id.
 *
 * An entry (table.h) carries two pairs of 32-bit links; a list threads through one
 * pair, named by `w` (ML_LINK_ORDER: insertion order, used for iteration;
 * ML_LINK_POLICY: the eviction policy's order, e.g. recency). Ids, not pointers: the
 * slab may be reallocated, and 32-bit links keep an entry small.
 *
 * These are the hot path of every cache hit (a recency move), so they are static inline
 * here; they call nothing and cannot fail. ML_NIL ends a list.
 */
#ifndef ML_LIST_H
#define ML_LIST_H

#include <stdint.h>

#include "core/table.h"

typedef struct ml_list {
    uint32_t head;   /* first (oldest) entry, or ML_NIL */
    uint32_t tail;   /* last (newest) entry, or ML_NIL */
} ml_list;

#define ML_LIST_EMPTY ((ml_list){ML_NIL, ML_NIL})

/* Appends entry id (not in this list) at the tail. */
static inline void
ml_list_push_back(ml_list *l, ml_entry *ents, int w, uint32_t id)
{
    ents[id].link[w][0] = l->tail;
    ents[id].link[w][1] = ML_NIL;
    if (l->tail != ML_NIL) {
        ents[l->tail].link[w][1] = id;
    }
    else {
        l->head = id;
    }
    l->tail = id;
}

/* Removes entry id (in this list) from it. */
static inline void
ml_list_unlink(ml_list *l, ml_entry *ents, int w, uint32_t id)
{
    uint32_t prev = ents[id].link[w][0];
    uint32_t next = ents[id].link[w][1];
    if (prev != ML_NIL) {
        ents[prev].link[w][1] = next;
    }
    else {
        l->head = next;
    }
    if (next != ML_NIL) {
        ents[next].link[w][0] = prev;
    }
    else {
        l->tail = prev;
    }
}

/* Moves entry id (in this list) to the tail; O(1), a no-op if it is the tail. */
static inline void
ml_list_move_back(ml_list *l, ml_entry *ents, int w, uint32_t id)
{
    if (l->tail != id) {
        ml_list_unlink(l, ents, w, id);
        ml_list_push_back(l, ents, w, id);
    }
}

#endif
