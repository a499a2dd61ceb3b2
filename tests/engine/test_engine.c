/* Engine units: canonical JSON, fingerprints, YAML scalars, graph order. */
#include "config.h"
#include "error.h"
#include "fingerprint.h"
#include "graph.h"
#include "yamltree.h"
#include "tap.h"

#include <string.h>
#include <unistd.h>

static int canon_is(const char *json_text, const char *expect)
{
    json_t *v = json_loads(json_text, JSON_DECODE_ANY, NULL);
    char *c = canonical_json(v);
    int ok = !strcmp(c, expect);
    if (!ok) printf("#   canonical %s -> %s (expected %s)\n", json_text, c, expect);
    free(c);
    json_decref(v);
    return ok;
}

static config *load(const char *text, sbuf *err)
{
    char path[] = "/tmp/ss_cfg_XXXXXX.yaml";
    int fd = mkstemps(path, 5);
    if (write(fd, text, strlen(text)) < 0) return NULL;
    close(fd);
    config *c = NULL;
    config_load(path, &c, err);
    unlink(path);
    return c;
}

int main(void)
{
    /* Canonical JSON: sorted keys, no spaces, shortest round-trip reals that
     * stay reals, integers as integers, escapes. */
    CHECK(canon_is("{\"b\": 1, \"a\": [1.5, 2.0, 0.1]}", "{\"a\":[1.5,2.0,0.1],\"b\":1}"), "keys sorted, reals kept");
    CHECK(canon_is("[99.9, 200.0, 1e-20, 1e300, -0.25, 123456789.0]",
                   "[99.9,200.0,1e-20,1e+300,-0.25,123456789.0]"),
          "shortest round-trip reals");
    CHECK(canon_is("{\"s\": \"a\\\"b\\\\c\\n\"}", "{\"s\":\"a\\\"b\\\\c\\u000a\"}"), "string escapes");
    CHECK(canon_is("[true, false, null, {}]", "[true,false,null,{}]"), "literals and empty object");

    /* Fingerprints: equal bases hash equal whatever the key order; any
     * change of a parameter, version or input changes the hash. */
    const stage_type *t = stage_type_find("normalize");
    CHECK(t != NULL, "normalize is registered");
    sample_info s = {.id = "a", .voxel = {1, 0.1, 0.1}, .repeats = 4};
    json_t *p1 = json_loads("{\"p_low\": 2.0, \"p_high\": 99.9}", 0, NULL);
    json_t *p2 = json_loads("{\"p_high\": 99.9, \"p_low\": 2.0}", 0, NULL);
    json_t *p3 = json_loads("{\"p_high\": 99.8, \"p_low\": 2.0}", 0, NULL);
    json_t *in1 = json_pack("{s:s}", "stack", "00000000000000000000000000000001");
    json_t *in2 = json_pack("{s:s}", "stack", "00000000000000000000000000000002");
    json_t *nofiles = json_object();
    char f1[FP_HEX], f2[FP_HEX], f3[FP_HEX], f4[FP_HEX];
    json_t *b;
    fp_of_basis(b = fp_basis(t, p1, in1, nofiles, &s, 7), f1), json_decref(b);
    fp_of_basis(b = fp_basis(t, p2, in1, nofiles, &s, 7), f2), json_decref(b);
    fp_of_basis(b = fp_basis(t, p3, in1, nofiles, &s, 7), f3), json_decref(b);
    fp_of_basis(b = fp_basis(t, p1, in2, nofiles, &s, 7), f4), json_decref(b);
    CHECK(strlen(f1) == 32, "fingerprint is 32 hex digits");
    CHECK(!strcmp(f1, f2), "key order does not matter");
    CHECK(strcmp(f1, f3) != 0, "a parameter change changes the fingerprint");
    CHECK(strcmp(f1, f4) != 0, "an input change changes the fingerprint");
    char f5[FP_HEX];
    fp_of_basis(b = fp_basis(t, p1, in1, nofiles, &s, 8), f5), json_decref(b);
    CHECK(!strcmp(f1, f5), "the seed does not enter a deterministic stage's fingerprint");
    const stage_type *syn = stage_type_find("synth_smooth");
    char g1[FP_HEX], g2[FP_HEX], g3[FP_HEX];
    fp_of_basis(b = fp_basis(syn, p1, nofiles, nofiles, &s, 7), g1), json_decref(b);
    fp_of_basis(b = fp_basis(syn, p1, nofiles, nofiles, &s, 8), g2), json_decref(b);
    sample_info s2 = s;
    s2.voxel[0] = 2;
    fp_of_basis(b = fp_basis(syn, p1, nofiles, nofiles, &s2, 7), g3), json_decref(b);
    CHECK(strcmp(g1, g2) != 0, "the seed enters a random stage's fingerprint");
    CHECK(strcmp(g1, g3) != 0, "the voxel size enters a source stage's fingerprint");
    json_decref(p1), json_decref(p2), json_decref(p3), json_decref(in1), json_decref(in2), json_decref(nofiles);

    /* File hashes: content, not name or time; the cache is trusted only for
     * an unchanged size, mtime and inode. */
    char fa[] = "/tmp/ss_fa_XXXXXX", fb[] = "/tmp/ss_fb_XXXXXX";
    int da = mkstemp(fa), db = mkstemp(fb);
    CHECK(write(da, "same bytes", 10) == 10 && write(db, "same bytes", 10) == 10, "two files");
    close(da), close(db);
    json_t *cache = json_object();
    char ha[FP_HEX], hb[FP_HEX], hc[FP_HEX];
    CHECK(fp_hash_file(fa, cache, ha) == SS_OK && fp_hash_file(fb, cache, hb) == SS_OK && !strcmp(ha, hb),
          "equal content, equal hash");
    FILE *fw = fopen(fa, "w");
    fputs("other bytes", fw);
    fclose(fw);
    CHECK(fp_hash_file(fa, cache, hc) == SS_OK && strcmp(ha, hc) != 0, "changed content (and size) rehashed");
    CHECK(fp_hash_file("/nonexistent/x", cache, hc) == SS_ERR_INPUT, "missing file: input error");
    unlink(fa), unlink(fb);
    json_decref(cache);

    /* YAML scalars (YAML 1.2 core schema). */
    ydoc *d;
    const char *y = "a: 12\nb: '12'\nc: 1.5e3\nd: 99999999999999999999\ne: 1e999\nf: .inf\ng: true\nh: yes\ni: ~\nj: 0x1F\n";
    CHECK(ydoc_load_string("t.yaml", y, strlen(y), &d) == SS_OK, "parse scalars");
    long long iv;
    double dv;
    int bv;
    CHECK(yscalar_int(ymap_get(d->root, "a"), &iv) == 1 && iv == 12, "plain 12 is an integer");
    CHECK(yscalar_int(ymap_get(d->root, "b"), &iv) == 0, "quoted '12' is a string");
    CHECK(yscalar_num(ymap_get(d->root, "c"), &dv) == 1 && dv == 1500, "1.5e3 is a number");
    CHECK(yscalar_int(ymap_get(d->root, "d"), &iv) == -1, "huge integer is out of range");
    CHECK(yscalar_num(ymap_get(d->root, "e"), &dv) == -1, "1e999 is out of range");
    CHECK(yscalar_num(ymap_get(d->root, "f"), &dv) == -1, ".inf is refused");
    CHECK(yscalar_bool(ymap_get(d->root, "g"), &bv) == 1 && bv == 1, "true is a bool");
    CHECK(yscalar_bool(ymap_get(d->root, "h"), &bv) == 0, "yes is not a bool (YAML 1.2)");
    CHECK(yscalar_is_null(ymap_get(d->root, "i")), "~ is null");
    CHECK(yscalar_int(ymap_get(d->root, "j"), &iv) == 1 && iv == 31, "0x1F is 31");
    CHECK(d->root->keys[3]->line == 4 && d->root->keys[3]->col == 1, "positions are 1-based line:col");
    ydoc_free(d);
    const char *bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                       "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
                       "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
                       "g: [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\n";
    CHECK(ydoc_load_string("bomb.yaml", bomb, strlen(bomb), &d) == SS_ERR_CONFIG, "alias bomb refused: %s",
          ss_errmsg());

    /* Graph: topological order respects inputs and keeps file order among
     * independent stages; dependants are everything downstream. */
    sbuf err = {0};
    config *c = load("version: 1\nrun: {name: t, output: o}\nsamples: [{id: s}]\nstages:\n"
                     "  m: {uses: fuse_mean, inputs: {repeats: n.data}}\n"
                     "  n: {uses: normalize, inputs: {stack: r.repeats}}\n"
                     "  r: {uses: synth_smooth}\n"
                     "  q: {uses: fuse_median, inputs: {repeats: n.data}}\n",
                     &err);
    CHECK(c != NULL, "graph config loads: %s", sbuf_str(&err));
    if (c) {
        int order[4];
        graph_topo_order(c, order);
        CHECK(!strcmp(c->stages[order[0]].name, "r") && !strcmp(c->stages[order[1]].name, "n") &&
                  !strcmp(c->stages[order[2]].name, "m") && !strcmp(c->stages[order[3]].name, "q"),
              "topological order r n m q");
        unsigned char mark[4] = {0};
        graph_mark_dependants(c, config_find_stage(c, "n"), mark);
        CHECK(mark[0] && mark[1] && !mark[2] && mark[3], "dependants of n: n, m, q");
        config_free(c);
    }
    sbuf_free(&err);
    config *cyc = load("version: 1\nrun: {name: t, output: o}\nsamples: [{id: s}]\nstages:\n"
                       "  a: {uses: normalize, inputs: {stack: b.data}}\n"
                       "  b: {uses: normalize, inputs: {stack: a.data}}\n",
                       &err);
    CHECK(!cyc && strstr(sbuf_str(&err), "cycle") &&
              (strstr(sbuf_str(&err), "a -> b -> a") || strstr(sbuf_str(&err), "b -> a -> b")),
          "a cycle is reported with its path: %s", sbuf_str(&err));
    sbuf_free(&err);
    return tap_done();
}
