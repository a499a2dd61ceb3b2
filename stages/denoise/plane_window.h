/* How the filters stream a stack of any depth: output plane z is made from
 * the input planes z - r .. z + r, reflected at the ends of the stack as
 * scipy's mode 'reflect' does (d c b a | a b c d | d c b a), each read once
 * and held in a ring of at most 2 r + 1 planes. A filter that first works on
 * each plane by itself (the Gaussian's y and x passes) does so in `prepare`,
 * once per plane as it is read. */
#ifndef SS_PLANE_WINDOW_H
#define SS_PLANE_WINDOW_H

#include "stage.h"

typedef struct {
    const char *stage_type;                 /* for messages */
    int64_t r;                              /* planes each side */
    void (*prepare)(float *plane, int64_t ny, int64_t nx, void *arg);  /* optional */
    /* out (ny x nx) from taps[0 .. 2 r], the planes z - r .. z + r */
    void (*combine)(const float *const *taps, int64_t ny, int64_t nx, float *out, void *arg);
    void *arg;
} plane_filter;

/* The whole stage: reads input port "image" (Z x Y x X), writes output
 * "filtered" (float32, the input's metadata) plane by plane, records the
 * planes it held (attribute planes_held). */
int plane_filter_run(stage_ctx *c, const plane_filter *f);

/* The ports of every plane filter. */
#define PLANE_FILTER_PORTS                                                                                             \
    static const port_spec inputs[] = {                                                                               \
        {.name = "image", .kinds = KIND_IMAGE, .doc = "image Z x Y x X"},                                              \
        {0},                                                                                                           \
    };                                                                                                                 \
    static const port_spec outputs[] = {                                                                              \
        {.name = "filtered", .kinds = KIND_IMAGE, .doc = "filtered image Z x Y x X, float32"},                         \
        {0},                                                                                                           \
    }

#endif
