#include "provenance.h"
#include "ss_build.h"
#include "store.h"
#include "version.h"

#include <cblas.h>
#include <fftw3.h>
#include <stdio.h>
#include <string.h>
#include <tiffio.h>
#include <xxhash.h>
#include <yaml.h>

const char *provenance_software_version(void) { return SS_GIT_VERSION; }

const char *provenance_version_line(void)
{
    static char line[160];
    /* Without git at build time the describe falls back to the version. */
    if (!strcmp(SS_GIT_VERSION, SS_VERSION)) snprintf(line, sizeof line, "sirenstack %s", SS_VERSION);
    else snprintf(line, sizeof line, "sirenstack %s (git %s)", SS_VERSION, SS_GIT_VERSION);
    return line;
}

json_t *provenance_libraries(void)
{
    char xxh[32];
    unsigned v = XXH_versionNumber();
    snprintf(xxh, sizeof xxh, "%u.%u.%u", v / 10000, v / 100 % 100, v % 100);
    char tiff[64];
    /* TIFFGetVersion is a multi-line banner; keep its first line. */
    snprintf(tiff, sizeof tiff, "%s", TIFFGetVersion());
    for (char *p = tiff; *p; p++)
        if (*p == '\n') *p = 0;
    return json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "hdf5", store_hdf5_version(), "blosc", store_blosc_version(),
                     "libyaml", yaml_get_version_string(), "jansson", JANSSON_VERSION, "xxhash", xxh, "openblas",
                     openblas_get_config(), "fftw", fftwf_version, "libtiff", tiff);
}
