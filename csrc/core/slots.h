/* slots.h — listener slots of an event emitter: per-event lists with O(1) unlink.
 *
 * Each listener lives in a slot of a slab (stable ids, reused through a free list; a
 * generation counter tells a stale handle from the slot's new tenant). The slots of one
 * event form a doubly linked list in the order they were added; events are kept in a
 * table (table.h) keyed by the binding's event objects, with a record per event id.
 *
 * Emits iterate a list while listeners run arbitrary code, so while any emit is in
 * progress (`emitting` > 0) an unlinked slot stays in its list as a tombstone: marked
 * gone, stamped with the clock, and queued for compaction, which frees it (and its
 * event record, once empty) when the last emit returns. Every add and removal takes a
 * tick of one clock, so an emit that began at tick T runs exactly the slots added before
 * T and not gone before T — the snapshot semantics of pyee, without copying a snapshot.
 * Slots added during an emit may sit anywhere in a list (a re-registration keeps its
 * place), so emits skip them by their tick rather than stopping at them.
 *
 * Live slots are also indexed by (event, listener identity) in a second table, so that
 * finding a listener (to replace or remove it) costs O(1) whatever the number of
 * listeners; the identity test is the binding's callback.
 *
 * The payload (four pointers and a hash) belongs to the binding; the core never
 * dereferences it.
 */
#ifndef ML_SLOTS_H
#define ML_SLOTS_H

#include <stdint.h>

#include "core/alloc.h"
#include "core/table.h"

enum {
    ML_SLOT_ONCE = 1u,      /* removed by the emit that runs it */
    ML_SLOT_GONE = 2u,      /* unlinked (a tombstone while emits run) */
    ML_SLOT_DEAD = 4u,      /* its owner died: never runs again */
    ML_SLOT_FREE = 8u       /* not in use */
};

typedef struct ml_slot {
    void *p[4];             /* the binding's payload */
    uint64_t hash;          /* the listener's identity hash (binding-defined) */
    uint64_t added;         /* clock tick of the add */
    uint64_t gone;          /* clock tick of the unlink (when ML_SLOT_GONE) */
    uint32_t prev, next;    /* the event's list; next is the free list when free */
    uint32_t event;         /* event id */
    uint32_t flags;         /* ML_SLOT_* */
    uint32_t gen;           /* bumped each time the slot is freed */
    uint32_t kind;          /* binding-defined */
    uint32_t zombie;        /* next tombstone awaiting compaction */
    uint32_t indexed;       /* its entry in the listener index, ML_NIL when not indexed */
} ml_slot;

typedef struct ml_event {
    uint32_t head, tail;    /* its slots, live and tombstones, oldest first */
    uint32_t live;          /* slots not gone */
    uint32_t warned;        /* binding-defined (the leak warning was given) */
} ml_event;

typedef struct ml_slots {
    ml_slot *s;
    uint32_t cap, top, free_head, used;   /* used: slots in use, tombstones included */
    ml_table events;        /* event objects; ids index ev */
    ml_event *ev;
    uint32_t ev_cap;
    ml_table index;         /* live slots by (event, identity); keys are slot id + 1 */
    uint32_t emitting;      /* emits in progress */
    uint32_t zombies;       /* head of the tombstones' queue */
    uint64_t clock;
} ml_slots;

void ml_slots_init(ml_slots *s, const ml_alloc *a);

/* Frees the arrays; the caller has released every payload and event key. */
void ml_slots_free(ml_slots *s);

/* Moves all of s into *out and leaves s empty, its clock and both tables' versions moved
 * forward (they never go back during the owner's life). The caller releases every payload
 * and event key of *out, then calls ml_slots_free(out). */
void ml_slots_steal(ml_slots *s, ml_slots *out);

/* Ensures that one ml_slots_add_event and one ml_slots_append cannot fail. Moves both
 * tables' versions forward (a reservation may rebuild their indexes).
 * ML_OK, ML_ERR_NOMEM or ML_ERR_FULL (s unchanged). */
int ml_slots_reserve(ml_slots *s);

/* Adds an event record for `key` (not yet in s->events). @return its id. */
uint32_t ml_slots_add_event(ml_slots *s, uint64_t hash, void *key);

/* Appends a slot to event ev. @return its id; the caller fills p[], hash, kind. */
uint32_t ml_slots_append(ml_slots *s, uint32_t ev, uint32_t flags);

/* Inserts a new slot right after live slot `after`, in its event (a re-registration
 * during an emit keeps its position). @return its id; the caller fills it. @pre
 * ml_slots_reserve succeeded. */
uint32_t ml_slots_insert_after(ml_slots *s, uint32_t after, uint32_t flags);

/* Adds live slot id to the listener index under its event and s->s[id].hash (set it
 * first). @pre ml_slots_reserve succeeded since the last add or append. */
void ml_slots_index(ml_slots *s, uint32_t id);

/* Gives live slot id a new listener hash and moves its entry in the listener index (the
 * listener's identity changed). @pre ml_slots_reserve succeeded since the last add. */
void ml_slots_rehash(ml_slots *s, uint32_t id, uint64_t hash);

/* Finds the live slot of event ev whose listener is `query`: the index's candidates with
 * the same hash are passed to eq(ctx, (void *)(slot id + 1), query). ML_OK (*id set),
 * ML_NOT_FOUND or ML_ERR_CALLBACK; eq may mutate s (the probe then restarts). */
int ml_slots_find(ml_slots *s, uint32_t ev, uint64_t hash, ml_eq_fn eq, void *ctx,
                  const void *query, uint32_t *id);

/* Unlinks live slot id (dead: its owner died). @return 1 when the slot was freed at once
 * (the caller releases its payload, read before the call, and then, if the event's record
 * was freed too — check with ml_slots_event_gone — the event key), 0 when it became a
 * tombstone (its payload stays until compaction). */
int ml_slots_unlink(ml_slots *s, uint32_t id, int dead);

/* @return whether the last ml_slots_unlink or ml_slots_pop_zombie freed event ev's record
 * (the caller then releases the key it read before). */
int ml_slots_event_gone(const ml_slots *s, uint32_t ev);

/* With no emit in progress: frees the next tombstone and @return its id (its payload and
 * p[] are still readable until the next call), or ML_NIL when none is left. */
uint32_t ml_slots_pop_zombie(ml_slots *s);

/* Whether slot id runs in an emit that began at tick `start`. */
static inline int
ml_slots_runs(const ml_slot *sl, uint64_t start)
{
    if (sl->added >= start || (sl->flags & (ML_SLOT_DEAD | ML_SLOT_FREE))) {
        return 0;
    }
    if (sl->flags & ML_SLOT_GONE) {
        /* gone after the emit began: it was in its snapshot; once listeners run once */
        return sl->gone >= start && !(sl->flags & ML_SLOT_ONCE);
    }
    return 1;
}

/* Bytes of the arrays. */
size_t ml_slots_sizeof(const ml_slots *s);

/* Aborts unless lists, counts and the free list agree. Debug builds only. */
void ml_slots_check(const ml_slots *s);

#endif
