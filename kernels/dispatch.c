/* Choosing a backend. The CPU table is always there (kernels/cpu/table.c);
 * a CUDA table built from kernels/cuda/ is returned here once it exists, and
 * only when a device is usable, so callers fall back to the CPU on NULL. */
#include "config.h"
#include "kernels.h"

const kernels *kernels_cuda(void)
{
    /* No CUDA kernels are built yet, even where nvcc was found
     * (SS_HAVE_CUDA): the table would be declared in kernels/cuda/ and
     * returned here after a device probe. */
    return NULL;
}
