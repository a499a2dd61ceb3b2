/* import_hdf5: raw repeats from an existing HDF5 file, so that runs can start
 * from what an acquisition or an earlier tool wrote. One dataset holding all
 * repeats (axes as given), or one dataset per repeat (`datasets`). The input
 * file is opened read-only and never changed (DESIGN.md invariant 3). */
#include "stage.h"

#include <hdf5.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    hid_t d;
    int rank;
    hsize_t dims[4];
    const char *name;
} src;

/* Position of each of r, z, y, x in the file's axes (-1 when absent). */
typedef struct {
    int r, z, y, x;
} axis_pos;

static axis_pos parse_axes(const char *axes)
{
    axis_pos p = {-1, -1, -1, -1};
    for (int i = 0; axes[i]; i++) {
        char a = axes[i];
        if (a == 'r' || a == 't') p.r = i;
        else if (a == 'z') p.z = i;
        else if (a == 'y') p.y = i;
        else if (a == 'x') p.x = i;
    }
    return p;
}

static int open_src(hid_t f, const char *file, const char *name, int rank, src *s)
{
    s->name = name;
    s->d = H5Lexists(f, name, H5P_DEFAULT) > 0 ? H5Dopen2(f, name, H5P_DEFAULT) : H5I_INVALID_HID;
    if (s->d < 0) return ss_fail(SS_ERR_INPUT, "%s: no dataset '%s'", file, name);
    hid_t sp = H5Dget_space(s->d);
    s->rank = H5Sget_simple_extent_ndims(sp);
    if (s->rank == rank) H5Sget_simple_extent_dims(sp, s->dims, NULL);
    H5Sclose(sp);
    if (s->rank != rank)
        return ss_fail(SS_ERR_INPUT, "%s: dataset '%s' has %d dimensions, but axes says %d", file, name, s->rank, rank);
    for (int i = 0; i < rank; i++)
        if (s->dims[i] == 0) return ss_fail(SS_ERR_INPUT, "%s: dataset '%s' is empty (axis %d has size 0)", file, name, i);
    return SS_OK;
}

static int dtype_ok(hid_t d, ss_dtype *dt)
{
    hid_t t = H5Dget_type(d);
    H5T_class_t cls = H5Tget_class(t);
    size_t sz = H5Tget_size(t);
    int sign = cls == H5T_INTEGER && H5Tget_sign(t) == H5T_SGN_2;
    H5Tclose(t);
    if (cls == H5T_FLOAT) *dt = sz == 4 ? DT_F32 : DT_F64;
    else if (cls == H5T_INTEGER && sz == 1 && !sign) *dt = DT_U8;
    else if (cls == H5T_INTEGER && sz == 2) *dt = sign ? DT_I16 : DT_U16;
    else if (cls == H5T_INTEGER && sz == 4) *dt = sign ? DT_I32 : DT_U32;
    else return -1;
    /* float64 data is stored as float32: the pipeline computes in float32. */
    if (*dt == DT_F64) *dt = DT_F32;
    return 0;
}

static int read_voxel_attr(hid_t d, double v[3])
{
    if (H5Aexists(d, "element_size_um") <= 0) return 0;
    hid_t a = H5Aopen(d, "element_size_um", H5P_DEFAULT);
    hid_t sp = H5Aget_space(a);
    int ok = H5Sget_simple_extent_npoints(sp) == 3 && H5Aread(a, H5T_NATIVE_DOUBLE, v) >= 0;
    H5Sclose(sp);
    H5Aclose(a);
    return ok && v[0] > 0 && v[1] > 0 && v[2] > 0;
}

static int run(stage_ctx *c)
{
    const char *file = ctx_str(c, "file");
    const char *axes = ctx_str(c, "axes");
    int rank = (int)strlen(axes);
    axis_pos ap = parse_axes(axes);
    int per_repeat = !ctx_is_null(c, "datasets");
    if (per_repeat == !ctx_is_null(c, "dataset"))
        return ss_fail(SS_ERR_CONFIG, "import_hdf5: give either 'dataset' or 'datasets' (one per repeat)");
    if (per_repeat && ap.r >= 0)
        return ss_fail(SS_ERR_CONFIG, "import_hdf5: with 'datasets' (one per repeat) the axes must not include r or t");
    /* Opened read-only, without HDF5's file lock: inputs may sit on
     * read-only or network filesystems. */
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_file_locking(fapl, 0, 1);
    hid_t f = H5Fopen(file, H5F_ACC_RDONLY, fapl);
    H5Pclose(fapl);
    if (f < 0) return ss_fail(SS_ERR_INPUT, "%s: cannot open as HDF5 (missing, unreadable, truncated or not HDF5)", file);
    int n_src = per_repeat ? (int)ctx_list_len(c, "datasets") : 1;
    src *s = calloc((size_t)n_src, sizeof *s);
    int rc = SS_OK;
    for (int i = 0; i < n_src && rc == SS_OK; i++)
        rc = open_src(f, file, per_repeat ? ctx_list_str(c, "datasets", i) : ctx_str(c, "dataset"), rank, &s[i]);
    ss_dtype dt = DT_U16;
    for (int i = 0; i < n_src && rc == SS_OK; i++) {
        ss_dtype di;
        if (dtype_ok(s[i].d, &di) != 0)
            rc = ss_fail(SS_ERR_INPUT, "%s: dataset '%s' has an unsupported element type (expected u8, u16, i16, u32, i32, f32, f64)",
                         file, s[i].name);
        else if (i == 0) dt = di;
        else if (di != dt) rc = ss_fail(SS_ERR_INPUT, "%s: repeats '%s' and '%s' have different element types", file,
                                        s[0].name, s[i].name);
        if (rc == SS_OK && i > 0 && memcmp(s[i].dims, s[0].dims, sizeof s[0].dims) != 0)
            rc = ss_fail(SS_ERR_INPUT, "%s: repeat '%s' has shape different from '%s'", file, s[i].name, s[0].name);
    }
    if (rc != SS_OK) goto done;
    int64_t R = per_repeat ? n_src : ap.r >= 0 ? (int64_t)s[0].dims[ap.r] : 1;
    int64_t Z = ap.z >= 0 ? (int64_t)s[0].dims[ap.z] : 1, Y = (int64_t)s[0].dims[ap.y], X = (int64_t)s[0].dims[ap.x];
    const sample_info *smp = ctx_sample(c);
    if (smp->repeats && smp->repeats != R) {
        rc = ss_fail(SS_ERR_INPUT, "%s: sample %s declares %d repeats, but '%s' holds %lld", file, smp->id, smp->repeats,
                     s[0].name, (long long)R);
        goto done;
    }
    array_meta m = {.axes = "rzyx", .unit = "micrometer"};
    double fv[3];
    if (!ctx_is_null(c, "voxel_size"))
        for (int i = 0; i < 3; i++) m.voxel[i] = ctx_list_num(c, "voxel_size", i);
    else if (smp->voxel[0] > 0) memcpy(m.voxel, smp->voxel, sizeof m.voxel);
    else if (read_voxel_attr(s[0].d, fv)) memcpy(m.voxel, fv, sizeof fv);
    else {
        m.voxel[0] = m.voxel[1] = m.voxel[2] = 1;
        ctx_warn(c, "%s: no voxel size in the config, the manifest or the file (element_size_um); using 1 x 1 x 1 um", file);
    }
    store_array *out = NULL;
    int64_t shape[4] = {R, Z, Y, X};
    if ((rc = store_writer_array(ctx_writer(c), "raw", dt, 4, shape, NULL, &m, &out)) != SS_OK) goto done;
    size_t plane = (size_t)(Y * X);
    void *buf = malloc(plane * 4);
    float *fbuf = malloc(plane * sizeof *fbuf);
    if (!buf || !fbuf)
        rc = ss_nomem(plane * (4 + sizeof *fbuf), "one plane of %lld x %lld", (long long)Y, (long long)X);
    hid_t mt = dt == DT_U8 ? H5T_NATIVE_UINT8 : dt == DT_U16 ? H5T_NATIVE_UINT16 : dt == DT_I16 ? H5T_NATIVE_INT16
             : dt == DT_U32 ? H5T_NATIVE_UINT32 : dt == DT_I32 ? H5T_NATIVE_INT32 : H5T_NATIVE_FLOAT;
    ctx_progress_begin(c, "planes", R * Z);
    for (int64_t r = 0; r < R && rc == SS_OK; r++)
        for (int64_t z = 0; z < Z && rc == SS_OK; z++) {
            const src *sr = &s[per_repeat ? r : 0];
            hsize_t st[4] = {0}, ct[4];
            for (int i = 0; i < rank; i++) ct[i] = sr->dims[i];
            if (ap.r >= 0) st[ap.r] = (hsize_t)r, ct[ap.r] = 1;
            if (ap.z >= 0) st[ap.z] = (hsize_t)z, ct[ap.z] = 1;
            hid_t fsp = H5Dget_space(sr->d);
            H5Sselect_hyperslab(fsp, H5S_SELECT_SET, st, NULL, ct, NULL);
            hsize_t mdim = plane;
            hid_t msp = H5Screate_simple(1, &mdim, NULL);
            herr_t e = H5Dread(sr->d, mt, msp, fsp, H5P_DEFAULT, buf);
            H5Sclose(msp);
            H5Sclose(fsp);
            if (e < 0) {
                rc = ss_fail(SS_ERR_INPUT, "%s: cannot read '%s' at repeat %lld plane %lld (corrupt or truncated file?)",
                             file, sr->name, (long long)r, (long long)z);
                break;
            }
            if (dt == DT_F32) {
                memcpy(fbuf, buf, plane * sizeof(float));
                size_t bad = ctx_kernels(c)->count_nonfinite_f32(fbuf, plane);
                if (bad) {
                    rc = ss_fail(SS_ERR_INPUT, "%s: '%s' holds %zu NaN or infinite values at repeat %lld plane %lld", file,
                                 sr->name, bad, (long long)r, (long long)z);
                    break;
                }
            }
            int64_t os[4] = {r, z, 0, 0}, oc[4] = {1, 1, Y, X};
            rc = store_array_write(out, os, oc, dt, buf);
            ctx_progress(c, r * Z + z + 1);
        }
    free(buf);
    free(fbuf);
    store_array_close(out);
done:
    for (int i = 0; i < n_src; i++)
        if (s[i].d > 0) H5Dclose(s[i].d);
    free(s);
    H5Fclose(f);
    return rc;
}

static const param_spec params[] = {
    {.name = "file", .type = P_PATH, .def = "\"{input}\"", .flags = PARAM_INPUT_FILE,
     .doc = "the HDF5 file (default: the sample's input)"},
    {.name = "dataset", .type = P_STR, .def = "null", .flags = PARAM_NULLABLE,
     .doc = "dataset path holding all repeats, e.g. /raw"},
    {.name = "datasets", .type = P_STR_LIST, .def = "null", .flags = PARAM_NULLABLE, .list_min = 1, .list_max = 4096,
     .doc = "one dataset path per repeat, instead of 'dataset'"},
    {.name = "axes", .type = P_ENUM, .def = "\"rzyx\"", .choices = "rzyx|zryx|tzyx|ztyx|zyx|ryx|tyx|yx",
     .doc = "axis order of the dataset(s); r or t: repeats; zr: each plane acquired R times (plane-major)"},
    PARAM_VOXEL_SIZE("voxel size [z, y, x] in micrometer (default: sample's, then the file's element_size_um)"),
    {0},
};
static const port_spec no_inputs[] = {{0}};
static const port_spec outputs[] = {
    {.name = "raw", .kinds = KIND_REPEATS, .doc = "the repeats R x Z x Y x X in the file's element type"},
    {0},
};

static const char *check(const json_t *p)
{
    int a = !json_is_null(json_object_get(p, "dataset")), b = !json_is_null(json_object_get(p, "datasets"));
    if (a == b) return "give either 'dataset' (all repeats in one) or 'datasets' (one per repeat)";
    const char *axes = json_string_value(json_object_get(p, "axes"));
    if (b && axes && (strchr(axes, 'r') || strchr(axes, 't')))
        return "with 'datasets' (one per repeat) the axes must not include r or t";
    return NULL;
}

/* stage_type.repeats_of: one per dataset of 'datasets'; 1 for axes without
 * r or t; else the file says. */
static int64_t repeats_of(const json_t *p, const char *output)
{
    (void)output;
    const json_t *list = json_object_get(p, "datasets");
    if (json_is_array(list)) return (int64_t)json_array_size(list);
    const char *axes = json_string_value(json_object_get(p, "axes"));
    return axes && !strchr(axes, 'r') && !strchr(axes, 't') ? 1 : 0;
}

const stage_type stage_import_hdf5 = {
    .name = "import_hdf5",
    .version = 1,
    .summary = "import raw repeats from datasets of an HDF5 file",
    .params = params,
    .inputs = no_inputs,
    .outputs = outputs,
    .flags = STAGE_SOURCE,
    .run = run,
    .check = check,
    .repeats_of = repeats_of,
};
