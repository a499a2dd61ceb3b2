#include "provenance.h"
#include "store.h"
#include "version.h"

#include <cblas.h>
#include <fftw3.h>
#include <stdio.h>
#include <tiffio.h>
#include <xxhash.h>
#include <yaml.h>

const char *provenance_software_version(void) { return SS_GIT_VERSION; }

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
