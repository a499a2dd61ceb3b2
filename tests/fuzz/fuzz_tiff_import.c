/* Fuzz target: importing a TIFF. The input is written as one file and
 * imported the way a run does, without the runner: libtiff and the reader of
 * pipeline/formats/tiff_read.c (the IFD chain, every page's checks, pixels),
 * tiff_meta_parse on its description (ImageJ, OME-XML), and stage
 * import_tiff itself, which maps the pages to repeats and planes under each
 * repeats_layout and streams them into a store (a Zarr container in the
 * scratch folder, written and aborted each time). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "error.h"
#include "tiff_meta.h"
#include "tiff_read.h"
#include "fuzz_common.h"
#include "progress.h"
#include "stage_ctx.h"
#include "util.h"

/* import_tiff's parameters, one config each; "file" is the sample's input. */
static const char *const variants[] = {
    "{}",
    "{repeats_layout: time}",
    "{repeats_layout: interleaved, repeats: 2}",
    "{repeats_layout: blocked, repeats: 2, channel: 1}",
    "{repeats_layout: none, channel: 0}",
};
#define N_VARIANTS (sizeof variants / sizeof *variants)
/* Pages checked and read directly through the reader, at most. */
#define MAX_PAGES 64
/* Planes larger than this are checked but not read by the direct walk. */
#define MAX_PLANE_BYTES ((int64_t)1 << 24)

static char *input;
static config *cfgs[N_VARIANTS];
static store *st;
static reporter *rep;

static void die(const char *what)
{
    fprintf(stderr, "fuzz_tiff_import: %s: %s\n", what, ss_errmsg());
    abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    input = fuzz_path("in.tif");
    fuzz_write(input, "", 0);
    for (size_t i = 0; i < N_VARIANTS; i++) {
        char name[32];
        snprintf(name, sizeof name, "import%zu.yaml", i);
        char *path = fuzz_path(name);
        char *text = ss_asprintf("version: 1\nrun: {name: fuzz, output: out}\nsamples: [{id: s, input: in.tif}]\n"
                                 "stages:\n  raw: {uses: import_tiff, params: %s}\n", variants[i]);
        fuzz_write(path, text, strlen(text));
        sbuf errors = {0};
        if (config_load(path, &cfgs[i], &errors) != SS_OK) die(sbuf_str(&errors));
        sbuf_free(&errors);
        free(text);
        free(path);
    }
    char *cont = fuzz_path("import.zarr");
    if (store_open(cont, STORE_ZARR, 1, &st) != SS_OK || store_lock(st) != SS_OK) die(cont);
    store_set_compression(st, STORE_COMP_NONE);
    free(cont);
    rep = reporter_new(0, 1e9, NULL, 1);
    return 0;
}

/* The reader on its own: every page (up to MAX_PAGES), and the pixels of
 * those of a plausible size. */
static void read_pages(void)
{
    tiff_reader *r;
    if (tiff_reader_open(input, &r) != SS_OK) {
        ss_errclear();
        return;
    }
    tiff_meta m;
    if (tiff_meta_parse(tiff_reader_description(r), &m) == 0) tiff_meta_free(&m);
    double xr, yr;
    int unit;
    tiff_reader_resolution(r, &xr, &yr, &unit);
    (void)tiff_reader_is_bigtiff(r);
    int64_t n = tiff_reader_pages(r);
    for (int64_t p = 0; p < n && p < MAX_PAGES; p++) {
        tiff_page_info in;
        if (tiff_reader_page(r, p, &in) != SS_OK) continue;
        int64_t bytes = in.width * in.height * (int64_t)dtype_size(in.dtype);
        if (bytes > MAX_PLANE_BYTES) continue;
        void *buf = malloc((size_t)bytes);
        if (!buf) abort();
        if (tiff_reader_read(r, p, buf) != SS_OK) ss_errclear();
        free(buf);
    }
    ss_errclear();
    tiff_reader_close(r);
}

static void import(const config *c)
{
    const stage_decl *d = &c->stages[0];
    const sample_info *smp = &c->samples[0];
    json_t *params = NULL;
    if (config_stage_params(c, 0, smp, &params) != SS_OK) die("parameters");
    json_t *others = d->type->companions ? d->type->companions(params, "file", input) : NULL;
    json_decref(others);
    stage_ctx ctx = {.cfg = c, .stage = 0, .sample = smp, .params = params, .st = st, .k = kernels_cpu(),
                     .rep = rep, .threads = 1};
    snprintf(ctx.label, sizeof ctx.label, "%s/%s", smp->id, d->name);
    if (store_stage_begin(st, d->name, &ctx.w) != SS_OK) die("stage begin");
    int rc = d->type->run(&ctx);
    progress_end(rep);
    /* An import that fails says why in one line; one that succeeds would be
     * committed, which the fuzzer has no use for. */
    if (rc != SS_OK && !ss_errmsg()[0]) {
        fprintf(stderr, "import_tiff failed (%d) without a message\n", rc);
        abort();
    }
    store_abort_stage(ctx.w);
    json_decref(ctx.extra_attrs);
    json_decref(params);
    ss_errclear();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_write(input, data, size);
    read_pages();
    for (size_t i = 0; i < N_VARIANTS; i++) import(cfgs[i]);
    return 0;
}
