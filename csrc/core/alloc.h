/* alloc.h — the one indirection every byte the core allocates goes through.
 *
 * The binding fills an ml_alloc with PyMem_* so that tracemalloc and memray attribute
 * each byte to the Python line that caused it; the core's unit tests plug in a
 * counting allocator that can fail on demand. Model: antirez/sds `sdsalloc.h`.
 */
#ifndef ML_ALLOC_H
#define ML_ALLOC_H

#include <stddef.h>

typedef struct ml_alloc {
    /* @return a block of at least n bytes (n > 0), or NULL; the caller frees it. */
    void *(*malloc)(void *ctx, size_t n);
    /* @return p resized to n bytes (p may be NULL), or NULL with p still valid. */
    void *(*realloc)(void *ctx, void *p, size_t n);
    /* Releases p (NULL is allowed); p is no longer valid. */
    void (*free)(void *ctx, void *p);
    void *ctx;
} ml_alloc;

/* Resizes the array *arr to n cells of `cell` bytes through a. @return ML_OK (then *arr
 * is the new block) or ML_ERR_NOMEM (then *arr is untouched and still valid). */
int ml_grow(const ml_alloc *a, void **arr, size_t cell, size_t n);

/* malloc/realloc/free of the C library; for core users outside Python. */
extern const ml_alloc ml_alloc_libc;

#endif
