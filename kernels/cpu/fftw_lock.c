/* The process-wide FFTW planner lock (see register.h). */
#include <pthread.h>

#include "register.h"

static pthread_mutex_t planner = PTHREAD_MUTEX_INITIALIZER;

void cpu_fftw_lock(void)
{
    pthread_mutex_lock(&planner);
}

void cpu_fftw_unlock(void)
{
    pthread_mutex_unlock(&planner);
}
