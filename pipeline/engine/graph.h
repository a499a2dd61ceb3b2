/* The stage graph of a config: edges run from a stage to the stages reading
 * its outputs. */
#ifndef SS_GRAPH_H
#define SS_GRAPH_H

#include "config.h"

/* Index of a stage on a cycle (and "a -> b -> a" in *path), or -1. */
int graph_find_cycle(const config *c, sbuf *path);
/* Topological order, ties broken by file order; order has n_stages slots. */
void graph_topo_order(const config *c, int *order);
/* Marks stage i and everything downstream of it (mark[k] = 1). */
void graph_mark_dependants(const config *c, int i, unsigned char *mark);
/* Marks stage i and everything upstream of it. */
void graph_mark_dependencies(const config *c, int i, unsigned char *mark);

#endif
