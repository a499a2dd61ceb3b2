#include "graph.h"

#include <stdlib.h>
#include <string.h>

static int reads_from(const stage_decl *d, int j)
{
    for (int k = 0; k < d->n_inputs; k++)
        if (d->inputs[k].stage_index == j) return 1;
    return 0;
}

/* Depth-first search with colours: 0 unvisited, 1 on the stack, 2 done. */
static int dfs(const config *c, int i, unsigned char *colour, int *stack, int depth, sbuf *path)
{
    colour[i] = 1;
    stack[depth] = i;
    const stage_decl *d = &c->stages[i];
    for (int k = 0; k < d->n_inputs; k++) {
        int j = d->inputs[k].stage_index;
        if (j < 0) continue;
        if (colour[j] == 1) {
            /* The cycle is stack[from..depth] -> j; print it in data-flow order. */
            int from = depth;
            while (from > 0 && stack[from] != j) from--;
            for (int q = depth; q >= from; q--) sbuf_printf(path, "%s -> ", c->stages[stack[q]].name);
            sbuf_put(path, c->stages[i].name);
            return j;
        }
        if (colour[j] == 0) {
            int r = dfs(c, j, colour, stack, depth + 1, path);
            if (r >= 0) return r;
        }
    }
    colour[i] = 2;
    return -1;
}

int graph_find_cycle(const config *c, sbuf *path)
{
    unsigned char *colour = calloc((size_t)c->n_stages + 1, 1);
    int *stack = calloc((size_t)c->n_stages + 1, sizeof *stack);
    int found = -1;
    for (int i = 0; i < c->n_stages && found < 0; i++)
        if (!colour[i]) found = dfs(c, i, colour, stack, 0, path);
    free(colour);
    free(stack);
    return found;
}

void graph_topo_order(const config *c, int *order)
{
    unsigned char *done = calloc((size_t)c->n_stages + 1, 1);
    for (int n = 0; n < c->n_stages; n++) {
        /* The first stage in file order whose inputs are all done. */
        for (int i = 0; i < c->n_stages; i++) {
            if (done[i]) continue;
            int ready = 1;
            for (int k = 0; k < c->stages[i].n_inputs && ready; k++) {
                int j = c->stages[i].inputs[k].stage_index;
                ready = j < 0 || done[j];
            }
            if (ready) {
                order[n] = i;
                done[i] = 1;
                break;
            }
        }
    }
    free(done);
}

void graph_mark_dependants(const config *c, int i, unsigned char *mark)
{
    if (mark[i]) return;
    mark[i] = 1;
    for (int k = 0; k < c->n_stages; k++)
        if (reads_from(&c->stages[k], i)) graph_mark_dependants(c, k, mark);
}

void graph_mark_dependencies(const config *c, int i, unsigned char *mark)
{
    if (mark[i]) return;
    mark[i] = 1;
    for (int k = 0; k < c->stages[i].n_inputs; k++)
        if (c->stages[i].inputs[k].stage_index >= 0) graph_mark_dependencies(c, c->stages[i].inputs[k].stage_index, mark);
}
