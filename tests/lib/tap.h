/* Minimal TAP producer for the C tests (meson runs them with protocol 'tap').
 * Each CHECK is one TAP test point; a failed check prints where and why. */
#ifndef SS_TAP_H
#define SS_TAP_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static int tap_n, tap_failed;

#define CHECK(cond, ...)                                                     \
    do {                                                                     \
        int tap_ok_ = !!(cond);                                              \
        tap_n++;                                                             \
        if (tap_ok_) {                                                          \
            printf("ok %d - ", tap_n);                                       \
        } else {                                                             \
            tap_failed++;                                                    \
            printf("not ok %d - ", tap_n);                                   \
        }                                                                    \
        printf(__VA_ARGS__);                                                 \
        printf("\n");                                                        \
        if (!tap_ok_) printf("#   failed at %s:%d: %s\n", __FILE__, __LINE__, #cond); \
        fflush(stdout);                                                      \
    } while (0)

#define CHECK_NEAR(a, b, tol, ...)                                           \
    do {                                                                     \
        double a_ = (a), b_ = (b);                                           \
        int ok_ = fabs(a_ - b_) <= (tol);                                    \
        CHECK(ok_, __VA_ARGS__);                                             \
        if (!ok_) printf("#   got %.17g, expected %.17g (tol %g)\n", a_, b_, (double)(tol)); \
    } while (0)

#define SKIP_ALL(reason)                                                     \
    do {                                                                     \
        printf("1..0 # SKIP %s\n", reason);                                  \
        return 0;                                                            \
    } while (0)

/* A point that could not be checked here, with the reason: counted as a
 * skip, never as a pass. */
#define TAP_SKIP(...)                                                        \
    do {                                                                     \
        tap_n++;                                                             \
        printf("ok %d # SKIP ", tap_n);                                      \
        printf(__VA_ARGS__);                                                 \
        printf("\n");                                                        \
        fflush(stdout);                                                      \
    } while (0)

static inline int tap_done(void)
{
    printf("1..%d\n", tap_n);
    return tap_failed ? 1 : 0;
}

#endif
