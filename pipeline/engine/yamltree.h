/* A YAML document as a tree of nodes that remember where they came from, so
 * that every config error can name file:line:column. Built on libyaml's event
 * parser. Anchors and aliases are supported (an alias shares the anchored
 * node), with a cap on the expanded size against "billion laughs" files. */
#ifndef SS_YAMLTREE_H
#define SS_YAMLTREE_H

#include <stddef.h>

typedef enum { YN_SCALAR, YN_SEQ, YN_MAP } yn_kind;

typedef struct ynode ynode;
struct ynode {
    yn_kind kind;
    int line, col;    /* 1-based position of the node's start */
    char *value;      /* scalars: the text */
    int plain;        /* scalars: unquoted (so 12 is a number, "12" a string) */
    size_t n;         /* sequences: items; maps: pairs */
    ynode **items;    /* sequence items, or map values */
    ynode **keys;     /* map keys (scalars) */
    ynode *next_alloc;
};

typedef struct {
    char *file;
    ynode *root;      /* NULL for an empty document */
    ynode *all;       /* every node, for freeing */
} ydoc;

/* Loads path. On error returns SS_ERR_CONFIG with "file:line:col: message"
 * (SS_ERR_CONFIG also for a missing file: the config is what is wrong). */
int ydoc_load(const char *path, ydoc **out);
int ydoc_load_string(const char *name, const char *text, size_t len, ydoc **out);
void ydoc_free(ydoc *d);

/* Map lookup: the value node for key, or NULL. */
ynode *ymap_get(const ynode *map, const char *key);
const char *yn_kind_name(yn_kind k);

/* Plain-scalar resolution (YAML 1.2 core schema). */
int yscalar_is_null(const ynode *n);
/* 1 and *v set if the scalar is true/false; 0 otherwise. */
int yscalar_bool(const ynode *n, int *v);
/* 1 if an integer (decimal, 0x, 0o) that fits int64; -1 if integer-looking
 * but out of range; 0 if not an integer. */
int yscalar_int(const ynode *n, long long *v);
/* 1 if a finite number fitting a double; -1 if number-looking but out of
 * range (1e999) or not finite (.inf, .nan); 0 if not a number. */
int yscalar_num(const ynode *n, double *v);

#endif
