/* sirenstack pack: a container as one self-contained HDF5 archive, for
 * keeping results for years: every committed stage with its provenance,
 * the config texts that produced them, the packing program's versions, and
 * every chunk's checksum (schemas/container-layout.md, "Archives"). Every
 * chunk is verified before anything is written; a damaged container is not
 * packed. A Zarr container is first copied into an HDF5 one beside the
 * archive (removed afterwards). */
#include "commands.h"
#include "error.h"
#include "provenance.h"
#include "store.h"
#include "util.h"

#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char pack_help[] =
    "usage: sirenstack pack CONTAINER -o ARCHIVE.h5\n"
    "\n"
    "Writes one self-contained HDF5 file (no external links) holding every\n"
    "committed stage of CONTAINER (.h5 or .zarr) with its provenance, the config\n"
    "(and manifest) texts that produced them, this program's and its libraries'\n"
    "versions, and every chunk's checksum. Every chunk is checked first; a\n"
    "damaged container is refused (exit 3: `sirenstack run` recomputes what is\n"
    "damaged). The archive is written under a temporary name and renamed into\n"
    "place. `sirenstack inspect`, `verify`, `export` and h5py read it like any\n"
    "container; `sirenstack run CONFIG --from ARCHIVE` reuses its stages.\n"
    "\n"
    "  -o, --output ARCHIVE.h5   the archive to write (not the container itself)\n"
    "  --help                    this text\n";

typedef struct {
    int problems;
    char first[1024];
} pack_check;

static void on_finding(void *ctx, store_severity sev, const char *stage, const char *member, const char *message)
{
    pack_check *pc = ctx;
    if (sev != STORE_PROBLEM) return;
    if (pc->problems++ == 0)
        snprintf(pc->first, sizeof pc->first, "stage %s%s%s: %s", stage ? stage : "index", member ? "/" : "",
                 member ? member : "", message);
}

/* The texts the stages name (attribute config / manifest), from the
 * container's work folder, or from the archive being repacked. */
static void collect_texts(store *st, json_t *attrs, json_t *texts, json_t *missing)
{
    static const char *const keys[2] = {"config", "manifest"}, *const ext[2] = {"yaml", "tsv"};
    for (int k = 0; k < 2; k++) {
        const char *h = json_string_value(json_object_get(attrs, keys[k]));
        if (!h) continue;
        char name[64];
        snprintf(name, sizeof name, "%s-%s.%s", keys[k], h, ext[k]);
        if (json_object_get(texts, name)) continue;
        char *text = NULL;
        size_t n = 0;
        char *p = ss_asprintf("%s/configs/%s.%s", store_workdir(st), h, ext[k]);
        if (store_is_packed(st)) store_archive_text(st, name, &text);
        else if (p && path_exists(p)) fs_read_all(p, &text, &n);
        ss_errclear();
        if (text) json_object_set_new(texts, name, json_string(text));
        else json_object_set(missing, name, json_true());
        free(text);
        free(p);
    }
}

int cmd_pack(int argc, char **argv)
{
    static const struct option opts[] = {
        {"output", required_argument, 0, 'o'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0},
    };
    const char *dest = NULL;
    optind = 1;
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        if (ch == 'o') dest = optarg;
        else if (ch == 'h') {
            fputs(pack_help, stdout);
            return SS_OK;
        } else {
            fprintf(stderr, "sirenstack pack: unknown or incomplete option '%s'\n%s", argv[optind - 1], pack_help);
            return SS_ERR_USAGE;
        }
    }
    if (optind != argc - 1 || !dest) {
        fprintf(stderr, "sirenstack pack: expected one CONTAINER and -o ARCHIVE.h5\n%s", pack_help);
        return SS_ERR_USAGE;
    }
    const char *src = argv[optind];
    char rs[PATH_MAX] = "", rd[PATH_MAX] = "";
    if (realpath(src, rs) && realpath(dest, rd) && !strcmp(rs, rd))
        return ss_fail(SS_ERR_USAGE, "%s: the archive must be another file than the container", dest);
    store *st = NULL, *tmp = NULL;
    int rc = open_container_flags(src, 0, &st);
    if (rc != SS_OK) return rc;
    char **stages = NULL;
    json_t *texts = json_object(), *missing = json_object(), *list = json_array(), *sample = NULL;
    pack_check pc = {0};
    int64_t chunks = 0;
    rc = store_list_stages(st, &stages);
    for (char **s = stages; rc == SS_OK && s && *s; s++) {
        store_state state;
        rc = store_stage_verify(st, *s, on_finding, &pc, &state, &chunks);
        if (rc == SS_OK && pc.problems)
            rc = ss_fail(SS_ERR_INPUT, "%s: %s; nothing packed (`sirenstack run` recomputes the damaged stage)",
                         store_path(st), pc.first);
        json_t *a = NULL;
        if (rc == SS_OK) rc = store_stage_attrs(st, *s, &a);
        if (rc == SS_OK) {
            collect_texts(st, a, texts, missing);
            if (!sample) sample = json_incref(json_object_get(a, "sample"));
            json_array_append_new(list, json_pack("{s:s,s:O,s:O}", "stage", *s, "fingerprint",
                                                  json_object_get(a, "fingerprint") ?: json_null(), "config",
                                                  json_object_get(a, "config") ?: json_null()));
        }
        json_decref(a);
    }
    char *tmpdir = NULL;
    if (rc == SS_OK && store_get_format(st) == STORE_ZARR) {
        /* Zarr: through an HDF5 container of the same stages, beside the archive */
        tmpdir = ss_asprintf("%s.packing.%ld", dest, (long)getpid());
        char *path = tmpdir ? ss_asprintf("%s/c.h5", tmpdir) : NULL;
        rc = path ? store_open(path, STORE_HDF5, STORE_OPEN_CREATE, &tmp) : ss_fail(SS_ERR_NOMEM, "out of memory");
        if (rc == SS_OK) rc = store_lock(tmp);
        for (char **s = stages; rc == SS_OK && s && *s; s++) rc = store_copy_stage(st, tmp, *s);
        free(path);
    }
    if (rc == SS_OK) {
        char when[32];
        ss_utc_iso8601(when);
        json_t *attrs = json_pack("{s:O,s:s,s:s,s:s,s:o,s:s,s:O,s:I}", "sample", sample ? sample : json_null(),
                                  "packed_from", src, "packed_at", when, "software_version",
                                  provenance_software_version(), "libraries", provenance_libraries(), "host",
                                  ss_hostname(), "stages", list, "chunks_verified", (json_int_t)chunks);
        if (json_object_size(missing)) {
            json_t *names = json_array();
            const char *k;
            json_t *v;
            json_object_foreach(missing, k, v) json_array_append_new(names, json_string(k));
            json_object_set_new(attrs, "texts_missing", names);
        }
        if (!realpath(src, rs)) snprintf(rs, sizeof rs, "%s", src);
        json_object_set_new(attrs, "packed_from", json_string(rs));
        rc = store_pack(tmp ? tmp : st, dest, attrs, texts);
        json_decref(attrs);
    }
    if (rc == SS_OK) {
        printf("%s: %zu stages, %lld chunks verified, %zu config text%s%s\n", dest, json_array_size(list),
               (long long)chunks, json_object_size(texts), json_object_size(texts) == 1 ? "" : "s",
               json_object_size(missing) ? " (some configs were not kept: packed without them)" : "");
    }
    store_close(tmp);
    if (tmpdir) fs_rm_rf(tmpdir);
    free(tmpdir);
    store_names_free(stages);
    json_decref(texts);
    json_decref(missing);
    json_decref(list);
    json_decref(sample);
    store_close(st);
    return rc;
}
