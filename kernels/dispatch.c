/* Choosing a backend. The CPU table is always there (kernels/cpu/table.c);
 * a CUDA table built from kernels/cuda/ is returned here once it exists, and
 * only when a device is usable, so callers fall back to the CPU on NULL. A
 * backend fills only the entries it implements; kernels_fill gives it the
 * CPU's for the rest and records which. */
#include "kernels.h"

#include <stddef.h>

#define COUNT_ENTRY(n) +1
enum { KERNEL_N_ENTRIES = 0 KERNEL_ENTRIES(COUNT_ENTRY) };
/* The list names every function pointer of the table: a new entry missing
 * from KERNEL_ENTRIES would be left out of kernels_fill and backend_ops. */
_Static_assert(sizeof(kernels) == offsetof(kernels, fuse_mean_f32) + KERNEL_N_ENTRIES * sizeof(void (*)(void)),
               "KERNEL_ENTRIES must list every entry of the kernels table");

int kernels_fill(kernels *t, const kernels *ref, const char **filled)
{
    int n = 0;
#define FILL_ENTRY(e)                                                                                              \
    if (!t->e) {                                                                                                   \
        t->e = ref->e;                                                                                             \
        filled[n++] = #e;                                                                                          \
    }
    KERNEL_ENTRIES(FILL_ENTRY)
#undef FILL_ENTRY
    filled[n] = NULL;
    t->filled = filled;
    return n;
}

const kernels *kernels_cuda(void)
{
    /* No CUDA kernels are built yet, even where nvcc was found: the table
     * would be declared in kernels/cuda/, completed with kernels_fill and
     * returned here after a device probe. */
    return NULL;
}
