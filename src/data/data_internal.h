/* Private helpers of the data room (src/data): opening HDF5 files with one clear error line,
 * silencing HDF5's own error-stack printing for the duration of a call, dataset shape/dtype
 * queries, and small writers shared by the converters. Not part of the public API; nothing here
 * calls MPI. */
#ifndef DPT_DATA_INTERNAL_H
#define DPT_DATA_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <hdf5.h>

#include "dptrain/data.h"

/* Bytes read per block when loading a shard or scanning labels: bounds peak extra memory. */
#define DPT_DATA_BLOCK_BYTES ((size_t)64 << 20)
/* Target chunk size of the datasets our writers create (along samples, whole rows). */
#define DPT_DATA_CHUNK_BYTES ((size_t)1 << 20)

/* Turns HDF5's automatic error printing off until dpt_h5_quiet_end (restores the previous
 * handler, so other rooms' settings are untouched). Local. */
typedef struct {
    H5E_auto2_t fn;
    void *data;
} dpt_h5_quiet;
void dpt_h5_quiet_begin(dpt_h5_quiet *q);
void dpt_h5_quiet_end(const dpt_h5_quiet *q);

/* Opens PATH read-only (serial, default driver). DPT_ERR_DATA: "path: no such file",
 * "path: not an HDF5 file", "path: cannot open (damaged or truncated HDF5 file)", ... Local. */
DPT_NODISCARD dpt_status dpt_h5_open_read(const char *path, hid_t *file);

/* "/train" from "train" or "/train" ("/" for "" or "/"), into buf. */
void dpt_h5_group_path(const char *group, char *buf, size_t n);

/* True when every component of the absolute PATH exists as a link in FILE. */
bool dpt_h5_path_exists(hid_t file, const char *path);

/* Name of an HDF5 datatype for messages: "uint8", "int32", "float32", "string", ... */
void dpt_h5_type_name(hid_t type, char *buf, size_t n);

/* "(28, 28)" from dims[0..rank) into buf. */
void dpt_dims_format(const int64_t *dims, int rank, char *buf, size_t n);

/* An opened split: the file, the group and its x and y datasets, and what probe learned. */
typedef struct {
    hid_t file, x, y;
    char path[4096];  /* file path for messages */
    char gpath[1024]; /* "/train" */
    char xpath[1100]; /* "/train/x" */
    char ypath[1100]; /* "/train/y" */
    H5T_class_t x_class, y_class;
    size_t x_type_size;
    bool x_signed;
    dpt_data_info info;
} dpt_h5_split;

/* Opens and checks FILE's GROUP (see dpt_data_probe). On failure everything is closed. Local. */
DPT_NODISCARD dpt_status dpt_h5_split_open(const char *path, const char *group, dpt_h5_split *s);
void dpt_h5_split_close(dpt_h5_split *s);

/* Token ids (dpt_target_spec.x_ids): the index of the first of x (n) that is not an integer in
 * [0, ids), or -1 (shard.c). */
int64_t dpt_data_bad_id(const float *x, int64_t n, int64_t ids);
/* The message for that failure: printf with (path, xpath, (long long)row, (double)v,
 * dpt_data_bad_id_why(v), (long long)ids). */
#define DPT_BAD_ID_FMT                                                                             \
    "%s: %s: row %lld: token id %.9g %s (the model's first layer is an Embedding: ids must be "    \
    "integers in [0, %lld))"
const char *dpt_data_bad_id_why(float v);

/* ---- writers ------------------------------------------------------------------------------- */

/* Creates dataset NAME under LOC with TYPE and dims[0..rank), chunked along dim 0 with chunks of
 * about DPT_DATA_CHUNK_BYTES (at least one row). Returns the dataset id or a negative value. */
hid_t dpt_h5_create_rows(hid_t loc, const char *name, hid_t type, int rank, const hsize_t *dims);
/* Writes rows [row0, row0 + count) of dataset DS (any rank) from buf, with MEMTYPE. */
herr_t dpt_h5_write_rows(hid_t ds, hid_t memtype, hsize_t row0, hsize_t count, const void *buf);
herr_t dpt_h5_attr_i64(hid_t loc, const char *name, int64_t v);
herr_t dpt_h5_attr_f32(hid_t loc, const char *name, float v);
/* A 1-D attribute of variable-length UTF-8 strings (what h5py writes for a list of str). */
herr_t dpt_h5_attr_strings(hid_t loc, const char *name, const char *const *v, int n);

/* Creates "OUT.tmp" for writing (truncating); the name goes to tmp (size n). DPT_ERR_IO if not. */
DPT_NODISCARD dpt_status dpt_h5_create_tmp(const char *out, char *tmp, size_t n, hid_t *file);
/* Closes FILE, fsyncs tmp and renames it to out. DPT_ERR_IO (tmp removed) if that fails. */
DPT_NODISCARD dpt_status dpt_h5_finish_tmp(hid_t file, const char *tmp, const char *out);
/* Closes FILE and removes tmp (after a failure). */
void dpt_h5_abandon_tmp(hid_t file, const char *tmp);

/* How y becomes targets (one plan for the in-memory shard and the stream). */
typedef enum { DPT_Y_COPY, DPT_Y_INDEX, DPT_Y_ONEHOT } dpt_y_mode;
typedef struct {
    dpt_y_mode mode;
    int64_t ys;       /* floats per target */
    bool check_range; /* integer labels must lie in [0, n_range) */
    int64_t n_range;
} dpt_y_plan;
/* The plan for split h and targets t (NULL: y raw as floats, or nothing without y); DPT_ERR_DATA
 * naming the file and y when y cannot give those targets. Local. */
DPT_NODISCARD dpt_status dpt_y_plan_make(const dpt_h5_split *h, const dpt_target_spec *t,
                                         dpt_y_plan *p);

#endif
