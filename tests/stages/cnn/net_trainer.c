/* Trains a network of stages/cnn/net.h with full-batch Adam on raw float32
 * files, for torch_net.py to repeat in PyTorch; or checks its gradient by
 * central differences (fd), or runs it twice (repeat) to show that a step is
 * a function of its inputs.
 *
 *   net_trainer MODE key=value...
 *     MODE  train | fd | repeat
 *     kind=unet|plain in=C out=C depth= width= max_width= kernel= convs=
 *     up=transposed|bilinear|nearest slope= residual=0|1 dropout=
 *     fourier_mask=0|1 fmask_rolloff=
 *     layers=K:F,K:F,...   (plain)
 *     n= h= w= steps= lr= seed= x=IN.f32 t=TARGET.f32
 *     params=OUT.f32 (initial parameters) grad=OUT.f32 (first gradient)
 *     losses=OUT.f64 (the loss before each step) final=OUT.f32 (parameters)
 * Prints the number of parameters and the convolution method. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cnn/net.h"

static const char *arg(int argc, char **argv, const char *key, const char *def)
{
    size_t n = strlen(key);
    for (int i = 2; i < argc; i++)
        if (!strncmp(argv[i], key, n) && argv[i][n] == '=') return argv[i] + n + 1;
    if (!def) {
        fprintf(stderr, "net_trainer: %s= is required\n", key);
        exit(64);
    }
    return def;
}

static void *load(const char *path, size_t bytes)
{
    FILE *f = fopen(path, "rb");
    void *p = malloc(bytes ? bytes : 1);
    if (!f || !p || fread(p, 1, bytes, f) != bytes) {
        fprintf(stderr, "net_trainer: cannot read %zu bytes from %s\n", bytes, path);
        exit(1);
    }
    fclose(f);
    return p;
}

static void save(const char *path, const void *p, size_t bytes)
{
    if (!path || !*path) return;
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, bytes, f) != bytes || fclose(f)) {
        fprintf(stderr, "net_trainer: cannot write %s\n", path);
        exit(1);
    }
}

int main(int argc, char **argv)
{
    if (argc < 2) return 64;
    openblas_set_num_threads(1);
    const char *mode = argv[1];
    net_arch a = {0};
    const char *kind = arg(argc, argv, "kind", "unet");
    a.kind = !strcmp(kind, "plain") ? NET_PLAIN : NET_UNET;
    a.in_ch = atoi(arg(argc, argv, "in", "1"));
    a.out_ch = atoi(arg(argc, argv, "out", "1"));
    a.depth = atoi(arg(argc, argv, "depth", "2"));
    a.width = atoi(arg(argc, argv, "width", "4"));
    a.max_width = atoi(arg(argc, argv, "max_width", "512"));
    a.kernel = atoi(arg(argc, argv, "kernel", "3"));
    a.convs = atoi(arg(argc, argv, "convs", "2"));
    const char *up = arg(argc, argv, "up", "transposed");
    a.up = !strcmp(up, "bilinear") ? NET_UP_BILINEAR : !strcmp(up, "nearest") ? NET_UP_NEAREST : NET_UP_TRANSPOSED;
    a.slope = strtof(arg(argc, argv, "slope", "0"), NULL);
    a.residual = atoi(arg(argc, argv, "residual", "0"));
    a.dropout = strtof(arg(argc, argv, "dropout", "0"), NULL);
    a.fourier_mask = atoi(arg(argc, argv, "fourier_mask", "0"));
    a.fmask_rolloff = strtof(arg(argc, argv, "fmask_rolloff", "0.1"), NULL);
    if (a.kind == NET_PLAIN) {
        const char *l = arg(argc, argv, "layers", NULL);
        while (*l && a.n_layers < NET_MAX_LAYERS) {
            char *end;
            a.kernels[a.n_layers] = (int)strtol(l, &end, 10);
            if (*end != ':') return 64;
            a.filters[a.n_layers++] = (int)strtol(end + 1, &end, 10);
            l = *end == ',' ? end + 1 : end;
        }
    }
    const char *why = net_arch_check(&a);
    if (why) {
        fprintf(stderr, "net_trainer: %s\n", why);
        return 2;
    }
    int n = atoi(arg(argc, argv, "n", "2")), h = atoi(arg(argc, argv, "h", "16")), w = atoi(arg(argc, argv, "w", "16"));
    int steps = atoi(arg(argc, argv, "steps", "1"));
    float lr = strtof(arg(argc, argv, "lr", "0.001"), NULL);
    uint64_t seed = strtoull(arg(argc, argv, "seed", "1"), NULL, 10);
    size_t nin = (size_t)n * a.in_ch * h * w, nout = (size_t)n * a.out_ch * h * w, np = net_n_params(&a);
    float *x = load(arg(argc, argv, "x", NULL), nin * sizeof(float));
    float *t = load(arg(argc, argv, "t", NULL), nout * sizeof(float));
    net *nt = net_new(kernels_cpu(), &a, n, h, w, NET_TRAIN | (atoi(arg(argc, argv, "bf16", "0")) ? NET_BF16 : 0));
    if (!nt) {
        fprintf(stderr, "net_trainer: net_new refused the shape\n");
        return 3;
    }
    float *p = malloc(np * sizeof *p), *g = malloc(np * sizeof *g), *m = calloc(np, sizeof *m),
          *v = calloc(np, sizeof *v);
    net_init(&a, p, seed);
    save(arg(argc, argv, "params", ""), p, np * sizeof *p);
    printf("params %zu\nkernel %s\nhalo %d\n", np, net_kernel(nt), net_halo(&a));
    const kernels *k = kernels_cpu();
    if (!strcmp(mode, "train")) {
        double *losses = malloc((size_t)steps * sizeof *losses);
        for (int s = 0; s < steps; s++) {
            memcpy(net_input(nt), x, nin * sizeof *x);
            net_forward(nt, p, 1, seed + (uint64_t)s);
            losses[s] = net_mse_backward(nt, p, t, g);
            if (s == 0) save(arg(argc, argv, "grad", ""), g, np * sizeof *g);
            k->adam_step(p, g, m, v, np, s + 1, lr, 0.9f, 0.999f, 1e-8f);
        }
        save(arg(argc, argv, "losses", ""), losses, (size_t)steps * sizeof *losses);
        save(arg(argc, argv, "final", ""), p, np * sizeof *p);
        free(losses);
    } else if (!strcmp(mode, "fd")) {
        memcpy(net_input(nt), x, nin * sizeof *x);
        net_forward(nt, p, 1, seed);
        double l0 = net_mse_backward(nt, p, t, g);
        double gmax = 0, worst = 0;
        for (size_t i = 0; i < np; i++) gmax = fmax(gmax, fabs(g[i]));
        float *scratch = malloc(np * sizeof *scratch);
        int checked = 0;
        for (size_t i = 0; i < np; i += np / 60 + 1) {
            float keep = p[i], hstep = 1e-2f * fmaxf(1.0f, fabsf(keep));
            double lp, lm;
            p[i] = keep + hstep;
            memcpy(net_input(nt), x, nin * sizeof *x);
            net_forward(nt, p, 1, seed);
            lp = net_mse_backward(nt, p, t, scratch);
            p[i] = keep - hstep;
            memcpy(net_input(nt), x, nin * sizeof *x);
            net_forward(nt, p, 1, seed);
            lm = net_mse_backward(nt, p, t, scratch);
            p[i] = keep;
            double fd = (lp - lm) / (2.0 * hstep);
            worst = fmax(worst, fabs(fd - g[i]) / fmax(gmax, 1e-30));
            checked++;
        }
        printf("loss %.9g\nchecked %d\nworst %.6g\n", l0, checked, worst);
        free(scratch);
    } else if (!strcmp(mode, "repeat")) {
        float *g2 = malloc(np * sizeof *g2);
        double l[2];
        for (int r = 0; r < 2; r++) {
            memcpy(net_input(nt), x, nin * sizeof *x);
            net_forward(nt, p, 1, seed);
            l[r] = net_mse_backward(nt, p, t, r ? g2 : g);
        }
        printf("identical %d\n", l[0] == l[1] && !memcmp(g, g2, np * sizeof *g));
        free(g2);
    } else {
        return 64;
    }
    net_free(nt);
    free(x), free(t), free(p), free(g), free(m), free(v);
    return 0;
}
