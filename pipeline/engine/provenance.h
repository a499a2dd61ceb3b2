/* Where a result came from: software and library versions, host, time. */
#ifndef SS_PROVENANCE_H
#define SS_PROVENANCE_H

#include <jansson.h>

const char *provenance_software_version(void); /* git describe at build time */
/* "sirenstack 0.1.0 (git ec2d9e5-dirty)": the project version and git describe. */
const char *provenance_version_line(void);
json_t *provenance_libraries(void);            /* {"hdf5": "1.10.8", ...} */

#endif
