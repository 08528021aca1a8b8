/* alloc.c — the C library allocator behind ml_alloc_libc (see alloc.h). */
#include "core/alloc.h"

#include <stdlib.h>

#include "core/status.h"

static void *libc_malloc(void *ctx, size_t n) { (void)ctx; return malloc(n); }
static void *libc_realloc(void *ctx, void *p, size_t n) { (void)ctx; return realloc(p, n); }
static void libc_free(void *ctx, void *p) { (void)ctx; free(p); }

const ml_alloc ml_alloc_libc = {libc_malloc, libc_realloc, libc_free, NULL};

int
ml_grow(const ml_alloc *a, void **arr, size_t cell, size_t n)
{
    void *p = a->realloc(a->ctx, *arr, n * cell);
    if (p == NULL) {
        return ML_ERR_NOMEM;
    }
    *arr = p;
    return ML_OK;
}
