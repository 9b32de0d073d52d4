/* Private to src/io: the HDF5 pieces shared by keras_weights.c and checkpoint.c.
 *
 * Keras weight layouts (writer: Keras 2 legacy at a file's root; reader: Keras 2 legacy at the root
 * or under /model_weights, Keras 3 legacy .h5, Keras 3 .weights.h5), string attributes in every
 * encoding Keras/h5py wrote, the atomic "write NAME.tmp, fsync, rename, fsync the directory" file
 * writer, and the FNV-1a 64 checksum. Serial HDF5 on one rank; all functions are local.
 * Not here: what a checkpoint's /dptrain group holds (checkpoint.c), model building (src/nn).
 */
#ifndef DPT_IO_CKPT_H5_H
#define DPT_IO_CKPT_H5_H

#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

#include <hdf5.h>

#include "dptrain/nn.h"
#include "dptrain/status.h"

/* The keras_version we write: a Keras 2 version (not "1.x", which would make Keras 2 convert
 * Keras-1 kernels) that Keras 2.x and Keras 3 legacy loaders accept as it is. */
#define DPT_KERAS_VERSION "2.15.0"
#define DPT_KERAS_BACKEND "tensorflow"

/* Switches off HDF5's own error printing (we print one line). Idempotent. */
void dpt_ckpt_h5_quiet(void);

/* Opens an existing HDF5 file read-only. DPT_ERR_CHECKPOINT naming `path` when it is missing,
 * not HDF5, truncated or otherwise unreadable. The caller closes *out with H5Fclose. */
/* Opens an HDF5 file read-only after checking the whole-file checksum that our writer stamps in
 * front of it (a damaged file is refused before HDF5, whose reader can crash on it, sees it).
 * require_stamp: refuse HDF5 files without the stamp (checkpoints); else accept them (Keras). */
DPT_NODISCARD dpt_status dpt_ckpt_h5_open(const char *path, bool require_stamp, hid_t *out);

/* Writes the Keras 2 legacy weights layout at the root of `f` (layer_names, backend,
 * keras_version, one group per layer, weight_names, <layer>/<layer>/<w>:0 datasets,
 * top_level_model_weights). `path` is for messages. DPT_ERR_IO on failure. */
DPT_NODISCARD dpt_status dpt_ckpt_h5_write_weights(hid_t f, const char *path, const dpt_model *m);

/* Reads the Keras weights found in `f` (any accepted layout) by position into `flat`, which is in
 * the model's flat parameter order (layer->param_offset), n_params floats. Nothing else is
 * touched, so a failure leaves the model as it was. With m == NULL (checksum verification
 * without a model), the weights of a dptrain-written legacy file are concatenated in file order
 * into *flat_alloc (malloc'd; free()), their count in *n_alloc.
 * DPT_ERR_CHECKPOINT naming `path` and the layer on any mismatch. */
DPT_NODISCARD dpt_status dpt_ckpt_h5_read_weights(hid_t f, const char *path, const dpt_model *m,
                                                  float *flat, float **flat_alloc,
                                                  int64_t *n_alloc);

/* Fills a freshly created file; returns DPT_ERR_IO (message set) on failure. */
typedef dpt_status (*dpt_ckpt_h5_fill_fn)(hid_t f, const char *path, void *ctx);

/* Writes `path` atomically: creates path.tmp, fill(), flush + close, fsync, rename onto path,
 * fsync the directory. On any failure: DPT_ERR_IO naming the path, path.tmp removed, an existing
 * `path` untouched. */
DPT_NODISCARD dpt_status dpt_ckpt_h5_write_atomic(const char *path, dpt_ckpt_h5_fill_fn fill,
                                                  void *ctx);

/* ---- attributes --------------------------------------------------------------------------- */

/* Reads a string (scalar) or string-array attribute, fixed- or variable-length, ASCII or UTF-8.
 * A numeric attribute with 0 elements (Keras's empty weight_names) gives n = 0.
 * Keras's split form (name0, name1, ...) is read when `name` itself is absent.
 * *out is a malloc'd array of malloc'd strings: free with dpt_ckpt_h5_free_strs. `what_path` is the
 * HDF5 path shown in messages. DPT_ERR_CHECKPOINT on failure. */
DPT_NODISCARD dpt_status dpt_ckpt_h5_read_strs(hid_t obj, const char *name, const char *file,
                                               const char *what_path, char ***out, int *n);
void dpt_ckpt_h5_free_strs(char **s, int n);

/* Writes a fixed-length NULLPAD ASCII string array attribute (what h5py writes for lists of bytes).
 * n == 0 writes an empty SIMPLE (0,) float64 array, as Keras does for an empty list. */
DPT_NODISCARD dpt_status dpt_ckpt_h5_write_strs(hid_t obj, const char *name, const char *file,
                                                const char *const *s, int n);
/* Writes a scalar variable-length string attribute (what h5py writes for a Python str). */
DPT_NODISCARD dpt_status dpt_ckpt_h5_write_str(hid_t obj, const char *name, const char *file,
                                               const char *s);

/* Bytes reserved in front of every HDF5 file we write, for a whole-file checksum (checked before
 * HDF5 sees the file; see keras_weights.c). A multiple of 512 as HDF5 requires. */
#define DPT_H5SUM_BYTES 512

#endif
