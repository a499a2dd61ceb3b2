/* Checkpoints: a training-like loop (Adam on a least-squares problem with
 * random mini-batches, OpenMP gradient with a fixed reduction order) killed
 * with SIGKILL at many points resumes from its last checkpoint and ends
 * bit-identical to an uninterrupted run. Also: a checkpoint of another
 * fingerprint is ignored, a corrupt one is an error. */
#include "checkpoint.h"
#include "error.h"
#include "host.h"
#include "kernels.h"
#include "util.h"
#include "tap.h"

#include <math.h>
#include <omp.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define N 512
#define STEPS 200
#define BATCH 64

static const char *FP = "0123456789abcdef0123456789abcdef";

/* Target data: y = A w*, a fixed problem from a fixed seed. */
static float target(int row, int col) { return (float)sin(0.37 * row + 0.11 * col); }

static int train(const char *ckpt_path, float *w_out)
{
    static float w[N], m[N], v[N];
    ss_rng rng;
    rng_seed(&rng, 42);
    memset(w, 0, sizeof w);
    memset(m, 0, sizeof m);
    memset(v, 0, sizeof v);
    int64_t step = 0;
    checkpoint *ck;
    if (checkpoint_new(ckpt_path, FP, 7, 0, &ck) != SS_OK) return -1;
    ckpt_entry e[4] = {{"w", w, sizeof w}, {"adam_m", m, sizeof m}, {"adam_v", v, sizeof v}, {"rng", &rng, sizeof rng}};
    int r = checkpoint_load(ck, &step, e, 4);
    if (r < 0) return -2;
    int nt = omp_get_max_threads();
    float partial[64][N];
    while (step < STEPS) {
        int rows[BATCH];
        for (int b = 0; b < BATCH; b++) rows[b] = (int)(rng_next(&rng) % 1000);
        /* Each thread sums a fixed slice of the batch; slices are added in
         * thread order, so the result depends only on the thread count. */
#pragma omp parallel num_threads(nt)
        {
            int t = omp_get_thread_num();
            float *g = partial[t];
            memset(g, 0, sizeof partial[t]);
            int lo = BATCH * t / nt, hi = BATCH * (t + 1) / nt;
            for (int b = lo; b < hi; b++) {
                double pred = 0, y = 0;
                for (int j = 0; j < N; j++) pred += target(rows[b], j) * w[j], y += target(rows[b], j) * 0.01f * (j % 7);
                float err = (float)(pred - y);
                for (int j = 0; j < N; j++) g[j] += err * target(rows[b], j) / BATCH;
            }
        }
        step++;
        for (int j = 0; j < N; j++) {
            float g = 0;
            for (int t = 0; t < nt; t++) g += partial[t][j];
            m[j] = 0.9f * m[j] + 0.1f * g;
            v[j] = 0.999f * v[j] + 0.001f * g * g;
            float mh = m[j] / (1 - powf(0.9f, (float)step)), vh = v[j] / (1 - powf(0.999f, (float)step));
            w[j] -= 1e-3f * mh / (sqrtf(vh) + 1e-8f);
        }
        if (checkpoint_due(ck, step) && checkpoint_save(ck, step, e, 4) != SS_OK) return -3;
    }
    memcpy(w_out, w, sizeof w);
    checkpoint_free(ck);
    return 0;
}

/* Runs this program as a child: "child CKPT OUT" with an optional crash point. */
static int run_child(const char *self, const char *ckpt, const char *out, const char *crash)
{
    pid_t pid = fork();
    if (pid == 0) {
        if (crash) setenv("SIRENSTACK_CRASHPOINT", crash, 1);
        else unsetenv("SIRENSTACK_CRASHPOINT");
        execl(self, self, "child", ckpt, out, (char *)NULL);
        _exit(127);
    }
    int st;
    waitpid(pid, &st, 0);
    if (WIFSIGNALED(st)) return -WTERMSIG(st);
    return WEXITSTATUS(st);
}

int main(int argc, char **argv)
{
    if (argc == 4 && !strcmp(argv[1], "child")) {
        float w[N];
        int r = train(argv[2], w);
        if (r) return 10 - r;
        FILE *f = fopen(argv[3], "wb");
        fwrite(w, sizeof w, 1, f);
        fclose(f);
        return 0;
    }
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    self[n > 0 ? n : 0] = 0;
    char tmpl[] = "/tmp/ss_ckpt_XXXXXX";
    char *dir = mkdtemp(tmpl);
    char *ref_ck = ss_asprintf("%s/ref.ckpt", dir), *ref_out = ss_asprintf("%s/ref.bin", dir);
    CHECK(run_child(self, ref_ck, ref_out, NULL) == 0, "uninterrupted run");
    char *ref, *got;
    size_t nref, ngot;
    fs_read_all(ref_out, &ref, &nref);
    CHECK(nref == N * sizeof(float), "reference weights written");

    /* Kill after the K-th save (resume from it) and before the K-th write
     * (resume from the previous one), at several K. */
    const char *points[] = {"checkpoint.after_write", "checkpoint.before_write"};
    int ks[] = {1, 3, 12, 28};
    for (int p = 0; p < 2; p++)
        for (int k = 0; k < 4; k++) {
            char *ck = ss_asprintf("%s/c%d%d.ckpt", dir, p, k), *out = ss_asprintf("%s/o%d%d.bin", dir, p, k);
            char crash[64];
            snprintf(crash, sizeof crash, "%s:%d", points[p], ks[k]);
            int r1 = run_child(self, ck, out, crash);
            CHECK(r1 == -SIGKILL, "killed at %s", crash);
            int r2 = run_child(self, ck, out, NULL);
            CHECK(r2 == 0, "resumed after %s", crash);
            fs_read_all(out, &got, &ngot);
            CHECK(ngot == nref && memcmp(got, ref, nref) == 0, "resumed run is bit-identical (%s)", crash);
            free(got);
            free(ck);
            free(out);
        }
    /* Two kills in a row, then resume. */
    char *ck = ss_asprintf("%s/twice.ckpt", dir), *out = ss_asprintf("%s/twice.bin", dir);
    run_child(self, ck, out, "checkpoint.after_write:2");
    CHECK(run_child(self, ck, out, "checkpoint.after_write:5") == -SIGKILL, "second kill after resuming");
    CHECK(run_child(self, ck, out, NULL) == 0, "third attempt finishes");
    fs_read_all(out, &got, &ngot);
    CHECK(ngot == nref && memcmp(got, ref, nref) == 0, "bit-identical after two kills");
    free(got);

    /* Another fingerprint's checkpoint is ignored; a corrupt one is an error. */
    checkpoint *c;
    float buf[4] = {1, 2, 3, 4};
    ckpt_entry e = {"x", buf, sizeof buf};
    char *p2 = ss_asprintf("%s/other.ckpt", dir);
    checkpoint_new(p2, "ffffffffffffffffffffffffffffffff", 1, 0, &c);
    CHECK(checkpoint_save(c, 5, &e, 1) == SS_OK, "save");
    checkpoint_free(c);
    checkpoint_new(p2, FP, 1, 0, &c);
    int64_t step = -1;
    CHECK(checkpoint_load(c, &step, &e, 1) == 0 && step == -1, "checkpoint of another fingerprint ignored");
    checkpoint_free(c);
    checkpoint_new(p2, "ffffffffffffffffffffffffffffffff", 1, 0, &c);
    CHECK(checkpoint_load(c, &step, &e, 1) == 1 && step == 5 && buf[3] == 4, "own checkpoint loads");
    FILE *f = fopen(p2, "r+b");
    fseek(f, 70, SEEK_SET);
    fputc(0x5a, f);
    fclose(f);
    CHECK(checkpoint_load(c, &step, &e, 1) == SS_ERR_IO, "corrupt checkpoint detected: %s", ss_errmsg());
    ckpt_entry wrong = {"y", buf, sizeof buf};
    checkpoint_save(c, 6, &e, 1);
    CHECK(checkpoint_load(c, &step, &wrong, 1) == SS_ERR_IO, "entry name mismatch detected");
    CHECK(checkpoint_remove(c) == SS_OK && !path_exists(p2), "remove");
    checkpoint_free(c);
    free(p2);
    free(ck);
    free(out);
    free(ref);
    free(ref_ck);
    free(ref_out);
    fs_rm_rf(dir);
    return tap_done();
}
