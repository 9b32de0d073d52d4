/* dptrain — output files other than checkpoints: the prediction file of `dptrain predict`.
 * Local: one rank writes. */
#ifndef DPTRAIN_IO_H
#define DPTRAIN_IO_H

#include <stdbool.h>
#include <stdint.h>

#include "dptrain/status.h"

typedef struct dpt_pred_file dpt_pred_file;

/* Creates PATH.tmp with n_sets float32 datasets names[i] of shape (n, cols[i]) — (n) when
 * cols[i] == 0. DPT_ERR_IO naming the path on failure. */
DPT_NODISCARD dpt_status dpt_pred_create(const char *path, int64_t n, int n_sets,
                                         const char *const *names, const int64_t *cols,
                                         dpt_pred_file **out);
/* Writes rows [row0, row0 + rows) of dataset `set` from v (rows, cols). */
DPT_NODISCARD dpt_status dpt_pred_write(dpt_pred_file *p, int set, int64_t row0, int64_t rows,
                                        const float *v);
DPT_NODISCARD dpt_status dpt_pred_attr_i64(dpt_pred_file *p, const char *name, int64_t v);
/* Closes and renames PATH.tmp to PATH; frees p. */
DPT_NODISCARD dpt_status dpt_pred_close(dpt_pred_file **p);
/* May `dptrain predict` write `out`? Refuses (DPT_ERR_USAGE naming the file) an `out` (or
 * out.tmp) that is the same file as one of inputs[0..n_inputs) (same device and inode: symlinks
 * and hard links included; what[i] says what it is, "the dataset"), whatever `force`; an `out`
 * that is a directory or not a regular file; and, unless `force`, an existing file that is not a
 * prediction file (the root attribute dptrain_predictions that dpt_pred_create writes). Local. */
DPT_NODISCARD dpt_status dpt_pred_check_out(const char *out, const char *const *inputs,
                                            const char *const *what, int n_inputs, bool force);
/* Closes and deletes PATH.tmp (after an error); frees p. */
void dpt_pred_abandon(dpt_pred_file **p);

#endif
