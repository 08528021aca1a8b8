/* slots.c — listener slots (see slots.h).
 *
 *   events (table.h)        ev[id]: head ... tail          s[]: the slab
 *   "data"  -> 0            [ 3 ] <-> [ 0 ] <-> [ 5 ]      3: live, 0: tombstone (gone, queued
 *   "error" -> 1            [ 1 ]                             on `zombies`), 5: live
 *
 * Outside emits, unlink frees a slot at once, and an event whose list empties loses its
 * record. Inside emits, unlink only marks and queues; ml_slots_pop_zombie does the rest
 * when the last emit has returned.
 */
#include "core/slots.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"

void
ml_slots_init(ml_slots *s, const ml_alloc *a)
{
    memset(s, 0, sizeof(*s));
    ml_table_init(&s->events, a);
    ml_table_init(&s->index, a);
    s->free_head = ML_NIL;
    s->zombies = ML_NIL;
}

void
ml_slots_free(ml_slots *s)
{
    const ml_alloc *a = s->events.alloc;
    a->free(a->ctx, s->s);
    a->free(a->ctx, s->ev);
    ml_table_free(&s->events);
    ml_table_free(&s->index);
    ml_slots_init(s, a);
}

void
ml_slots_steal(ml_slots *s, ml_slots *out)
{
    *out = *s;
    const ml_alloc *a = s->events.alloc;
    uint64_t clock = s->clock, ev_version = s->events.version, ix_version = s->index.version;
    ml_slots_init(s, a);
    s->clock = clock + 1u;
    s->events.version = ev_version + 1u;
    s->index.version = ix_version + 1u;
}

int
ml_slots_reserve(ml_slots *s)
{
    const ml_alloc *a = s->events.alloc;
    /* A reservation may rebuild either index (larger, or smaller once deleted entries are
     * dropped), and a probe of it may be suspended in an equality callback that subscribes
     * (the binding's __eq__): both versions move on, so that such a probe restarts rather
     * than read the old layout. The table itself does not bump on a rebuild. */
    s->events.version++;
    s->index.version++;
    int rc = ml_table_reserve(&s->events);
    if (rc == ML_OK) {
        rc = ml_table_reserve(&s->index);
    }
    if (rc != ML_OK) {
        return rc;
    }
    if (s->events.cap > s->ev_cap) {
        if (ml_grow(a, (void **)&s->ev, sizeof(ml_event), s->events.cap) != ML_OK) {
            return ML_ERR_NOMEM;
        }
        s->ev_cap = s->events.cap;
    }
    if (s->free_head == ML_NIL && s->top == s->cap) {
        if (s->cap >= ML_TABLE_MAX_ENTRIES) {
            return ML_ERR_FULL;
        }
        uint32_t cap = s->cap < 8 ? 8 : (s->cap > ML_TABLE_MAX_ENTRIES / 2 ? ML_TABLE_MAX_ENTRIES
                                                                            : s->cap * 2);
        if (ml_grow(a, (void **)&s->s, sizeof(ml_slot), cap) != ML_OK) {
            return ML_ERR_NOMEM;
        }
        s->cap = cap;
    }
    return ML_OK;
}

uint32_t
ml_slots_add_event(ml_slots *s, uint64_t hash, void *key)
{
    uint32_t id = ml_table_insert(&s->events, hash, key, NULL);
    assert(id < s->ev_cap);
    s->ev[id] = (ml_event){ML_NIL, ML_NIL, 0, 0};
    return id;
}

/* Takes a free slot id and initialises it as live in event ev (not linked yet). */
static uint32_t
take(ml_slots *s, uint32_t ev, uint32_t flags)
{
    uint32_t id, gen = 0;
    if (s->free_head != ML_NIL) {
        id = s->free_head;
        s->free_head = s->s[id].next;
        gen = s->s[id].gen;
    }
    else {
        assert(s->top < s->cap);
        id = s->top++;
    }
    ml_slot *sl = &s->s[id];
    memset(sl, 0, sizeof(*sl));
    sl->gen = gen;
    sl->flags = flags & ML_SLOT_ONCE;
    sl->added = s->clock++;
    sl->event = ev;
    sl->zombie = ML_NIL;
    sl->indexed = ML_NIL;
    s->ev[ev].live++;
    s->used++;
    return id;
}

uint32_t
ml_slots_append(ml_slots *s, uint32_t ev, uint32_t flags)
{
    uint32_t id = take(s, ev, flags);
    ml_event *e = &s->ev[ev];
    ml_slot *sl = &s->s[id];
    sl->prev = e->tail;
    sl->next = ML_NIL;
    if (e->tail == ML_NIL) {
        e->head = id;
    }
    else {
        s->s[e->tail].next = id;
    }
    e->tail = id;
    return id;
}

uint32_t
ml_slots_insert_after(ml_slots *s, uint32_t after, uint32_t flags)
{
    uint32_t ev = s->s[after].event, id = take(s, ev, flags);
    ml_slot *sl = &s->s[id];
    sl->prev = after;
    sl->next = s->s[after].next;
    if (sl->next == ML_NIL) {
        s->ev[ev].tail = id;
    }
    else {
        s->s[sl->next].prev = id;
    }
    s->s[after].next = id;
    return id;
}

/* The index's hash of a listener hash under event ev. */
static inline uint64_t
index_hash(uint32_t ev, uint64_t hash)
{
    return hash ^ ((uint64_t)(ev + 1) * 0x9E3779B97F4A7C15u);
}

void
ml_slots_index(ml_slots *s, uint32_t id)
{
    ml_slot *sl = &s->s[id];
    assert(sl->indexed == ML_NIL);
    sl->indexed = ml_table_insert(&s->index, index_hash(sl->event, sl->hash),
                                  (void *)((uintptr_t)id + 1), NULL);
}

void
ml_slots_rehash(ml_slots *s, uint32_t id, uint64_t hash)
{
    ml_slot *sl = &s->s[id];
    assert(!(sl->flags & (ML_SLOT_GONE | ML_SLOT_FREE)) && sl->indexed != ML_NIL);
    ml_table_remove(&s->index, sl->indexed);
    sl->indexed = ML_NIL;
    sl->hash = hash;
    ml_slots_index(s, id);
}

int
ml_slots_find(ml_slots *s, uint32_t ev, uint64_t hash, ml_eq_fn eq, void *ctx,
              const void *query, uint32_t *id)
{
    uint32_t entry;
    int rc = ml_table_find(&s->index, index_hash(ev, hash), query, eq, ctx, &entry);
    if (rc == ML_OK) {
        *id = (uint32_t)((uintptr_t)s->index.ents[entry].key - 1);
    }
    return rc;
}

static void
unindex(ml_slots *s, ml_slot *sl)
{
    if (sl->indexed != ML_NIL) {
        ml_table_remove(&s->index, sl->indexed);
        sl->indexed = ML_NIL;
    }
}

/* Takes slot id out of its event's list and frees it (and the event record when its
 * list is now empty). */
static void
release(ml_slots *s, uint32_t id)
{
    ml_slot *sl = &s->s[id];
    ml_event *e = &s->ev[sl->event];
    if (sl->prev == ML_NIL) {
        e->head = sl->next;
    }
    else {
        s->s[sl->prev].next = sl->next;
    }
    if (sl->next == ML_NIL) {
        e->tail = sl->prev;
    }
    else {
        s->s[sl->next].prev = sl->prev;
    }
    if (e->head == ML_NIL) {
        ml_table_remove(&s->events, sl->event);
    }
    sl->flags = ML_SLOT_FREE;
    sl->gen++;
    sl->next = s->free_head;
    s->free_head = id;
    s->used--;
}

int
ml_slots_unlink(ml_slots *s, uint32_t id, int dead)
{
    ml_slot *sl = &s->s[id];
    assert(id < s->top && !(sl->flags & (ML_SLOT_GONE | ML_SLOT_FREE)));
    s->ev[sl->event].live--;
    unindex(s, sl);
    uint64_t tick = s->clock++;   /* every removal ticks: callers detect mutation by it */
    if (s->emitting == 0) {
        release(s, id);
        return 1;
    }
    sl->flags |= ML_SLOT_GONE | (dead ? ML_SLOT_DEAD : 0u);
    sl->gone = tick;
    sl->zombie = s->zombies;
    s->zombies = id;
    return 0;
}

int
ml_slots_event_gone(const ml_slots *s, uint32_t ev)
{
    return s->events.ents[ev].key == NULL;
}

uint32_t
ml_slots_pop_zombie(ml_slots *s)
{
    uint32_t id = s->zombies;
    if (id == ML_NIL || s->emitting != 0) {
        return ML_NIL;
    }
    s->zombies = s->s[id].zombie;
    release(s, id);
    return id;
}

size_t
ml_slots_sizeof(const ml_slots *s)
{
    return (size_t)s->cap * sizeof(ml_slot) + (size_t)s->ev_cap * sizeof(ml_event) +
           ml_table_sizeof(&s->events) + ml_table_sizeof(&s->index);
}

#ifndef NDEBUG
void
ml_slots_check(const ml_slots *s)
{
    uint32_t in_lists = 0, events = 0, indexed = 0;
    for (uint32_t ev = 0; ev < s->events.top; ev++) {
        if (s->events.ents[ev].key == NULL) {
            continue;
        }
        events++;
        const ml_event *e = &s->ev[ev];
        uint32_t live = 0, prev = ML_NIL;
        for (uint32_t id = e->head; id != ML_NIL; id = s->s[id].next) {
            const ml_slot *sl = &s->s[id];
            if (id >= s->top || sl->prev != prev || sl->event != ev || (sl->flags & ML_SLOT_FREE)) {
                abort();
            }
            live += !(sl->flags & ML_SLOT_GONE);
            if ((sl->flags & ML_SLOT_GONE) ? sl->indexed != ML_NIL
                                           : (sl->indexed == ML_NIL ||
                                              s->index.ents[sl->indexed].key !=
                                                  (void *)((uintptr_t)id + 1))) {
                abort();
            }
            indexed += !(sl->flags & ML_SLOT_GONE);
            in_lists++;
            prev = id;
        }
        if (e->tail != prev || e->head == ML_NIL || e->live != live) {
            abort();
        }
    }
    uint32_t zombies = 0;
    for (uint32_t id = s->zombies; id != ML_NIL; id = s->s[id].zombie) {
        if (!(s->s[id].flags & ML_SLOT_GONE) || ++zombies > s->used) {
            abort();
        }
    }
    uint32_t free_slots = 0;
    for (uint32_t id = s->free_head; id != ML_NIL; id = s->s[id].next) {
        if (!(s->s[id].flags & ML_SLOT_FREE) || ++free_slots > s->top) {
            abort();
        }
    }
    if (in_lists != s->used || free_slots + s->used != s->top || events != s->events.used ||
        indexed != s->index.used ||
        (s->emitting == 0 && zombies != 0)) {
        abort();
    }
}
#endif
