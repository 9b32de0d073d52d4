/* The run configuration: parses a dptrain JSON config (model + compile + fit + data + checkpoint)
 * into a dpt_config, with one-line errors "<file>: <json path>: <what>" (DPT_ERR_CONFIG).
 *
 * The model section accepts every Keras form of a Sequential model.to_json(): Keras <= 2.2.2's bare
 * list, 2.2.3-2.12's {"name", "layers"} with or without an InputLayer, 2.13+'s entries with
 * module/registered_name/build_config, Keras 3 (InputLayer batch_shape, DTypePolicy objects), a
 * bare list of layers, or a path to a file holding any of these. It is normalised to a list of
 * {"class_name", "config", "_path"} without the InputLayer, plus the input shape. Unknown keys are
 * ignored in the model (Keras adds keys over versions) and refused everywhere else (typos must not
 * pass silently). Options that would change the math and that we do not implement are refused.
 *
 * Leaves to others: validating layer classes and their keys (src/nn builds the model from the
 * normalised list), checking the data file (src/data), command-line overrides (src/cli). Parsing
 * is pure and local: the same bytes fail the same way on every rank. A `model` path is read here,
 * relative to the current directory, on every rank that parses (the callers agree on the result).
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dptrain/config.h"
#include "dptrain/core.h"
#include "dptrain/metrics.h"

#define DPT_READ_FILE_MAX                                                                          \
    ((size_t)1 << 30) /* a config or model file larger than this is absurd                         \
                       */

/* ---- reading a file ------------------------------------------------------------------------ */

dpt_status dpt_read_file(const char *path, dpt_status what, char **text, size_t *len) {
    *text = NULL;
    *len = 0;
    /* O_NONBLOCK: a FIFO must be refused, not waited on (open would block every rank) */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return dpt_error_set(what, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        int err = errno;
        bool stat_ok = fstat(fd, &sb) == 0;
        close(fd);
        if (!stat_ok)
            return dpt_error_set(what, "%s: cannot read: %s", path, strerror(err));
        if (S_ISDIR(sb.st_mode))
            return dpt_error_set(what, "%s: cannot read: %s", path, strerror(EISDIR));
        return dpt_error_set(what, "%s: cannot read: %s, not a regular file", path,
                             dpt_file_kind(sb.st_mode));
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        (void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        close(fd);
        return dpt_error_set(what, "%s: cannot open: %s", path, strerror(errno));
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    dpt_status st = buf ? DPT_OK : dpt_error_set(DPT_ERR_NOMEM, "%s: out of memory", path);
    while (st == DPT_OK) {
        if (cap - n < 2) {
            if (cap >= DPT_READ_FILE_MAX) {
                st = dpt_error_set(what, "%s: larger than %zu bytes", path, DPT_READ_FILE_MAX);
                break;
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                st = dpt_error_set(DPT_ERR_NOMEM, "%s: out of memory (%zu bytes)", path, cap * 2);
                break;
            }
            buf = nb;
            cap *= 2;
        }
        size_t r = fread(buf + n, 1, cap - 1 - n, f);
        n += r;
        if (r == 0) {
            if (ferror(f))
                st = dpt_error_set(what, "%s: cannot read: %s", path, strerror(errno));
            break;
        }
    }
    fclose(f);
    if (st != DPT_OK) {
        free(buf);
        return st;
    }
    buf[n] = '\0';
    *text = buf;
    *len = n;
    return DPT_OK;
}

/* ---- message helpers ----------------------------------------------------------------------- */

/* "<file>: <path>[.<key>]: <what>" (or "<file>: <key>: ..." when path is empty). */
static dpt_status cfg_error(const dpt_json_ctx *ctx, const char *key, const char *fmt, ...)
    DPT_PRINTF(3, 4);
static dpt_status cfg_error(const dpt_json_ctx *ctx, const char *key, const char *fmt, ...) {
    char what[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (!ctx->path[0] && !key)
        return dpt_error_set(DPT_ERR_CONFIG, "%s: %s", ctx->file, what);
    const char *sep = (ctx->path[0] && key) ? "." : "";
    return dpt_error_set(DPT_ERR_CONFIG, "%s: %s%s%s: %s", ctx->file, ctx->path, sep,
                         key ? key : "", what);
}

/* A child context: parent path + ".key" or "[i]" (fmt decides). */
static void ctx_child(dpt_json_ctx *child, const dpt_json_ctx *parent, const char *fmt, ...)
    DPT_PRINTF(3, 4);
static void ctx_child(dpt_json_ctx *child, const dpt_json_ctx *parent, const char *fmt, ...) {
    char tail[192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tail, sizeof tail, fmt, ap);
    va_end(ap);
    child->file = parent->file;
    child->keras_major = parent->keras_major;
    /* a key directly under the top level has no leading dot */
    const char *t = (!parent->path[0] && tail[0] == '.') ? tail + 1 : tail;
    int w = snprintf(child->path, sizeof child->path, "%s%s", parent->path, t);
    if (w < 0 || (size_t)w >= sizeof child->path) /* absurdly deep: say it was cut */
        memcpy(child->path + sizeof child->path - 4, "...", 4);
}

/* Refuses any key of obj not in `known` (NULL-terminated), listing the known ones. */
static dpt_status check_keys(const json_t *obj, const dpt_json_ctx *ctx, const char *const *known) {
    const char *key;
    const json_t *val;
    json_object_foreach((json_t *)obj, key, val) {
        (void)val;
        bool ok = false;
        for (const char *const *k = known; *k && !ok; k++)
            ok = !strcmp(key, *k);
        if (ok)
            continue;
        char list[512] = "";
        size_t used = 0;
        for (const char *const *k = known; *k; k++) {
            int w = snprintf(list + used, sizeof list - used, "%s%s", used ? ", " : "", *k);
            if (w < 0 || (size_t)w >= sizeof list - used)
                break;
            used += (size_t)w;
        }
        return cfg_error(ctx, key, "unknown key (known: %s)", list);
    }
    return DPT_OK;
}

/* A section that must be an object when present; *out NULL when absent or null. */
static dpt_status get_section(const json_t *root, const char *key, const dpt_json_ctx *ctx,
                              const json_t **out) {
    const json_t *v = json_object_get(root, key);
    *out = NULL;
    if (!v || json_is_null(v))
        return DPT_OK;
    if (!json_is_object(v))
        return cfg_error(ctx, key, "must be an object, got %s", dpt_json_type_name(v));
    *out = v;
    return DPT_OK;
}

/* Copies a string option into a fixed buffer; empty strings are refused (omit the key instead). */
static dpt_status get_str_buf(const json_t *obj, const char *key, const dpt_json_ctx *ctx,
                              const char *def, char *buf, size_t n) {
    const char *s = NULL;
    dpt_status st = dpt_json_get_str(obj, key, ctx, def, &s);
    if (st != DPT_OK)
        return st;
    if (!s) {
        buf[0] = '\0';
        return DPT_OK;
    }
    if (!s[0])
        return cfg_error(ctx, key, "must not be empty (omit the key instead)");
    if (strlen(s) >= n)
        return cfg_error(ctx, key, "longer than %zu characters", n - 1);
    memcpy(buf, s, strlen(s) + 1);
    return DPT_OK;
}

/* ---- model --------------------------------------------------------------------------------- */

/* Parses a list of dimensions into shape. with_batch: the list starts with the batch dimension
 * (null or a positive integer), which is dropped. ctx names the list itself. */
static dpt_status parse_dims(const json_t *list, bool with_batch, const dpt_json_ctx *ctx,
                             dpt_shape *shape) {
    if (!json_is_array(list))
        return cfg_error(ctx, NULL, "must be a list of dimensions, got %s",
                         dpt_json_type_name(list));
    size_t n = json_array_size(list), first = with_batch ? 1 : 0;
    dpt_json_ctx c;
    if (with_batch && n >= 1) {
        const json_t *b = json_array_get(list, 0);
        if (!json_is_null(b) && !(json_is_integer(b) && json_integer_value(b) > 0)) {
            ctx_child(&c, ctx, "[0]");
            return cfg_error(&c, NULL,
                             "the batch dimension must be null or a positive integer, "
                             "got %s",
                             dpt_json_type_name(b));
        }
    }
    if (n <= first)
        return cfg_error(ctx, NULL, "needs at least one dimension%s",
                         with_batch ? " besides the batch dimension" : "");
    if (n - first > DPT_MAX_RANK)
        return cfg_error(ctx, NULL, "%zu dimensions per sample, at most %d are supported",
                         n - first, DPT_MAX_RANK);
    dpt_shape s;
    memset(&s, 0, sizeof s);
    s.rank = (int)(n - first);
    int64_t prod = 1;
    for (size_t i = first; i < n; i++) {
        const json_t *d = json_array_get(list, i);
        ctx_child(&c, ctx, "[%zu]", i);
        if (!json_is_integer(d))
            return cfg_error(&c, NULL, "must be a positive integer, got %s", dpt_json_type_name(d));
        json_int_t v = json_integer_value(d);
        if (v <= 0)
            return cfg_error(&c, NULL, "must be a positive integer, got %lld", (long long)v);
        if (dpt_mul_i64(prod, (int64_t)v, "input shape", &prod) != DPT_OK)
            return cfg_error(ctx, NULL, "the number of values per sample overflows int64");
        s.dim[i - first] = (int64_t)v;
    }
    *shape = s;
    return DPT_OK;
}

/* "[null, 28, 28]": a sample shape as Keras writes a batch shape. */
static void format_shape(const dpt_shape *s, char *buf, size_t n) {
    size_t used = (size_t)snprintf(buf, n, "[null");
    for (int i = 0; i < s->rank && used < n; i++)
        used += (size_t)snprintf(buf + used, n - used, ", %lld", (long long)s->dim[i]);
    if (used < n)
        snprintf(buf + used, n - used, "]");
}

static bool same_shape(const dpt_shape *a, const dpt_shape *b) {
    if (a->rank != b->rank)
        return false;
    for (int i = 0; i < a->rank; i++)
        if (a->dim[i] != b->dim[i])
            return false;
    return true;
}

/* The input shape a (non-Input) first layer declares in Keras 2 style, if any: its config's
 * batch_input_shape, input_shape or input_dim, else the entry's build_config.input_shape (2.13+).
 */
static dpt_status first_layer_shape(const json_t *entry, const json_t *config,
                                    const dpt_json_ctx *ectx, bool *found, dpt_shape *shape) {
    dpt_json_ctx c;
    const json_t *v;
    *found = true;
    if ((v = json_object_get(config, "batch_input_shape")) && !json_is_null(v)) {
        ctx_child(&c, ectx, ".config.batch_input_shape");
        return parse_dims(v, true, &c, shape);
    }
    if ((v = json_object_get(config, "input_shape")) && !json_is_null(v)) {
        ctx_child(&c, ectx, ".config.input_shape");
        return parse_dims(v, false, &c, shape);
    }
    /* an Embedding's input_dim is its vocabulary; its Keras 2 input_length is the steps */
    bool embedding = !strcmp(json_string_value(json_object_get(entry, "class_name")), "Embedding");
    if (embedding && (v = json_object_get(config, "input_length")) && !json_is_null(v)) {
        ctx_child(&c, ectx, ".config");
        int64_t d = 0;
        dpt_status st = dpt_json_get_int(config, "input_length", &c, 0, 1, INT64_MAX, &d);
        if (st != DPT_OK)
            return st;
        memset(shape, 0, sizeof *shape);
        shape->rank = 1;
        shape->dim[0] = d;
        return DPT_OK;
    }
    if (!embedding && (v = json_object_get(config, "input_dim")) && !json_is_null(v)) {
        ctx_child(&c, ectx, ".config");
        int64_t d = 0;
        dpt_status st = dpt_json_get_int(config, "input_dim", &c, 0, 1, INT64_MAX, &d);
        if (st != DPT_OK)
            return st;
        memset(shape, 0, sizeof *shape);
        shape->rank = 1;
        shape->dim[0] = d;
        return DPT_OK;
    }
    const json_t *bc = json_object_get(entry, "build_config");
    if (json_is_object(bc) && (v = json_object_get(bc, "input_shape")) && !json_is_null(v)) {
        ctx_child(&c, ectx, ".build_config.input_shape");
        return parse_dims(v, true, &c, shape);
    }
    *found = false;
    return DPT_OK;
}

/* Normalises the layer list `arr` (at lctx) into c->layers and the input shape. `model_config` is
 * the model's config object (dict forms) or NULL; it may hold build_input_shape. */
static dpt_status parse_layer_list(const json_t *arr, const json_t *model_config,
                                   const dpt_json_ctx *lctx, dpt_config *c) {
    if (!json_is_array(arr))
        return cfg_error(lctx, NULL, "must be a list of layers, got %s", dpt_json_type_name(arr));
    json_t *out = json_array();
    if (!out)
        return dpt_error_set(DPT_ERR_NOMEM, "%s: out of memory", lctx->file);
    dpt_status st = DPT_OK;
    bool have_shape = false, from_input_layer = false;
    dpt_shape shape;
    memset(&shape, 0, sizeof shape);
    size_t n = json_array_size(arr);
    for (size_t i = 0; i < n && st == DPT_OK; i++) {
        const json_t *e = json_array_get(arr, i);
        dpt_json_ctx ectx, c2;
        ctx_child(&ectx, lctx, "[%zu]", i);
        if (!json_is_object(e)) {
            st = cfg_error(&ectx, NULL, "must be a layer object, got %s", dpt_json_type_name(e));
            break;
        }
        const json_t *cn = json_object_get(e, "class_name");
        if (!json_is_string(cn)) {
            st = cn ? cfg_error(&ectx, "class_name", "must be a string, got %s",
                                dpt_json_type_name(cn))
                    : cfg_error(&ectx, "class_name", "required (the layer's Keras class)");
            break;
        }
        const char *cls = json_string_value(cn);
        const json_t *lc = json_object_get(e, "config");
        if (!json_is_object(lc)) {
            st = cfg_error(&ectx, "config", "must be an object, got %s", dpt_json_type_name(lc));
            break;
        }
        if (!strcmp(cls, "InputLayer")) {
            if (json_array_size(out) > 0 || from_input_layer) {
                st = cfg_error(&ectx, NULL, "an InputLayer is only supported as the first layer");
                break;
            }
            const json_t *bs = json_object_get(lc, "batch_input_shape");
            const char *key = "batch_input_shape";
            if (!bs || json_is_null(bs)) {
                bs = json_object_get(lc, "batch_shape"); /* Keras 3 */
                key = "batch_shape";
            }
            if (!bs || json_is_null(bs)) {
                st =
                    cfg_error(&ectx, "config", "InputLayer needs batch_input_shape or batch_shape");
                break;
            }
            ctx_child(&c2, &ectx, ".config.%s", key);
            st = parse_dims(bs, true, &c2, &shape);
            have_shape = from_input_layer = true;
            continue;
        }
        if (json_array_size(out) == 0) {
            bool found = false;
            dpt_shape s;
            st = first_layer_shape(e, lc, &ectx, &found, &s);
            if (st != DPT_OK)
                break;
            if (found && have_shape && !same_shape(&s, &shape)) {
                char a[128], b[128];
                format_shape(&s, a, sizeof a);
                format_shape(&shape, b, sizeof b);
                st = cfg_error(&ectx, "config",
                               "the declared input shape %s disagrees with the "
                               "InputLayer's %s",
                               a, b);
                break;
            }
            if (found && !have_shape) {
                shape = s;
                have_shape = true;
            }
        }
        json_t *norm =
            json_pack("{s:s, s:O, s:s}", "class_name", cls, "config", lc, "_path", ectx.path);
        if (!norm || json_array_append_new(out, norm) != 0)
            st = dpt_error_set(DPT_ERR_NOMEM, "%s: out of memory", lctx->file);
    }
    if (st == DPT_OK && json_array_size(out) == 0)
        st =
            cfg_error(lctx, NULL, "no layers%s", from_input_layer ? " besides the InputLayer" : "");
    if (st == DPT_OK && !have_shape && model_config) {
        /* Keras 2.x/3 write build_input_shape when the model was built without an input shape */
        const json_t *bis = json_object_get(model_config, "build_input_shape");
        if (bis && !json_is_null(bis)) {
            /* lctx is "<...>config.layers": name the sibling key "<...>config.build_input_shape" */
            dpt_json_ctx parent = *lctx, c2;
            char *dot = strrchr(parent.path, '.');
            if (dot)
                *dot = '\0';
            ctx_child(&c2, &parent, ".build_input_shape");
            st = parse_dims(bis, true, &c2, &shape);
            have_shape = true;
        }
    }
    if (st != DPT_OK) {
        json_decref(out);
        return st;
    }
    c->layers = out;
    c->has_input_shape = have_shape;
    c->input_shape = shape;
    return DPT_OK;
}

/* Keras 2's model.to_json() names its keras_version ("2.15.0"; Keras 3 writes none): each
 * normalised layer entry gets "_keras_major": 2 so that constructors pick Keras 2's meaning where
 * the two differ (hard_sigmoid). Absent or unparsable: Keras 3 rules. */
static void tag_keras_major(const json_t *model, json_t *layers) {
    const char *v = json_string_value(json_object_get(model, "keras_version"));
    if (!v || (v[0] != '1' && v[0] != '2') || v[1] != '.')
        return;
    size_t i;
    json_t *e;
    json_array_foreach(layers, i, e) json_object_set_new(e, "_keras_major", json_integer(2));
}

/* The model value (object or list) at mctx ("model" inline, "" at the top of a model file). */
static dpt_status parse_model_value(const json_t *m, const dpt_json_ctx *mctx, dpt_config *c) {
    if (json_is_array(m))
        return parse_layer_list(m, NULL, mctx, c);
    if (!json_is_object(m))
        return cfg_error(mctx, NULL,
                         "must be a Keras model (model.to_json()), a list of layers or "
                         "the path of a model JSON file, got %s",
                         dpt_json_type_name(m));
    const json_t *cn = json_object_get(m, "class_name");
    if (!cn && json_object_get(m, "model"))
        return cfg_error(mctx, NULL,
                         "this is a dptrain config, not a Keras model "
                         "(model.to_json())");
    if (!json_is_string(cn))
        return cn ? cfg_error(mctx, "class_name", "must be \"Sequential\", got %s",
                              dpt_json_type_name(cn))
                  : cfg_error(mctx, "class_name", "required (\"Sequential\")");
    if (strcmp(json_string_value(cn), "Sequential") != 0)
        return cfg_error(mctx, "class_name", "only Sequential models are supported, got \"%s\"",
                         json_string_value(cn));
    const json_t *cfg = json_object_get(m, "config");
    dpt_json_ctx cctx, lctx;
    ctx_child(&cctx, mctx, ".config");
    if (json_is_array(cfg)) { /* Keras <= 2.2.2 */
        dpt_status st = parse_layer_list(cfg, NULL, &cctx, c);
        if (st == DPT_OK)
            tag_keras_major(m, c->layers);
        return st;
    }
    if (!json_is_object(cfg))
        return cfg_error(&cctx, NULL,
                         "must be an object with \"layers\" (or a list of layers), "
                         "got %s",
                         dpt_json_type_name(cfg));
    ctx_child(&lctx, &cctx, ".layers");
    const json_t *layers = json_object_get(cfg, "layers");
    if (!layers)
        return cfg_error(&lctx, NULL, "required (the list of layers)");
    dpt_status st = parse_layer_list(layers, cfg, &lctx, c);
    if (st == DPT_OK)
        tag_keras_major(m, c->layers);
    return st;
}

/* Loads a JSON text with line/column errors "<file>:<line>:<column>: invalid JSON: <text>". */
static dpt_status load_json(const char *text, size_t len, const char *file, json_t **out) {
    json_error_t err;
    *out = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err);
    if (!*out)
        return dpt_error_set(DPT_ERR_CONFIG, "%s:%d:%d: invalid JSON: %s", file, err.line,
                             err.column, err.text);
    return DPT_OK;
}

static dpt_status parse_model(const json_t *root, const dpt_json_ctx *top, dpt_config *c) {
    const json_t *m = json_object_get(root, "model");
    if (!m || json_is_null(m))
        return cfg_error(top, "model", "required");
    if (!json_is_string(m)) {
        dpt_json_ctx mctx;
        ctx_child(&mctx, top, ".model");
        dpt_status st = parse_model_value(m, &mctx, c);
        if (st == DPT_OK)
            c->model_json = json_incref((json_t *)m);
        return st;
    }
    const char *path = json_string_value(m);
    if (!path[0])
        return cfg_error(top, "model", "must not be empty");
    if (strlen(path) >= sizeof c->model_file)
        return cfg_error(top, "model", "path longer than %zu characters", sizeof c->model_file - 1);
    char *text = NULL;
    size_t len = 0;
    dpt_status st = dpt_read_file(path, DPT_ERR_CONFIG, &text, &len);
    if (st != DPT_OK) {
        char inner[1024];
        snprintf(inner, sizeof inner, "%s", dpt_error_message());
        return cfg_error(top, "model", "%s", inner);
    }
    json_t *mj = NULL;
    st = load_json(text, len, path, &mj);
    free(text);
    if (st != DPT_OK)
        return st;
    snprintf(c->model_file, sizeof c->model_file, "%s", path);
    dpt_json_ctx mctx = {.file = c->model_file, .path = ""}; /* paths inside that file */
    st = parse_model_value(mj, &mctx, c);
    if (st != DPT_OK) {
        json_decref(mj);
        return st;
    }
    c->model_json = mj;
    return DPT_OK;
}

/* ---- compile ------------------------------------------------------------------------------- */

/* A number (a JSON number) at obj[key] that must be present. */
static dpt_status need_num(const json_t *obj, const char *key, const dpt_json_ctx *ctx, double lo,
                           double *out) {
    const json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v))
        return cfg_error(ctx, key, "required");
    dpt_status st = dpt_json_get_num(obj, key, ctx, 0, -HUGE_VAL, HUGE_VAL, false, out);
    if (st != DPT_OK)
        return st;
    if (!isfinite(*out) || !(*out > lo))
        return cfg_error(ctx, key, "must be a number > %g, got %g", lo, *out);
    return DPT_OK;
}

/* A list of at most max numbers at obj[key] (required). */
static dpt_status num_list(const json_t *obj, const char *key, const dpt_json_ctx *ctx, int max,
                           double *out, int *n) {
    const json_t *v = json_object_get(obj, key);
    if (!json_is_array(v))
        return cfg_error(ctx, key, "must be a list of numbers");
    if (json_array_size(v) > (size_t)max)
        return cfg_error(ctx, key, "at most %d entries are supported, got %zu", max,
                         json_array_size(v));
    for (size_t i = 0; i < json_array_size(v); i++) {
        const json_t *e = json_array_get(v, i);
        if (!json_is_number(e))
            return cfg_error(ctx, key, "entry %zu must be a number, got %s", i,
                             dpt_json_type_name(e));
        out[i] = json_number_value(e);
        if (!isfinite(out[i]))
            return cfg_error(ctx, key, "entry %zu must be finite", i);
    }
    *n = (int)json_array_size(v);
    return DPT_OK;
}

/* A Keras LearningRateSchedule object ({"class_name", "config"}, with or without Keras 3's
 * module/registered_name) at ctx. */
static dpt_status parse_schedule(const json_t *o, const dpt_json_ctx *ctx, dpt_lr_schedule *s) {
    memset(s, 0, sizeof *s);
    const json_t *cn = json_object_get(o, "class_name");
    if (!json_is_string(cn))
        return cfg_error(ctx, "class_name",
                         "required (ExponentialDecay, CosineDecay, PiecewiseConstantDecay, "
                         "InverseTimeDecay, PolynomialDecay or CosineDecayRestarts)");
    const char *cls = json_string_value(cn);
    const json_t *c = json_object_get(o, "config");
    dpt_json_ctx cc;
    ctx_child(&cc, ctx, ".config");
    if (!json_is_object(c))
        return cfg_error(&cc, NULL, "must be an object, got %s", dpt_json_type_name(c));
    dpt_status st;
    if (!strcmp(cls, "ExponentialDecay")) {
        static const char *const keys[] = {
            "initial_learning_rate", "decay_steps", "decay_rate", "staircase", "name", NULL};
        s->kind = DPT_LR_EXPONENTIAL;
        if ((st = check_keys(c, &cc, keys)) ||
            (st = need_num(c, "initial_learning_rate", &cc, 0, &s->initial_learning_rate)) ||
            (st = need_num(c, "decay_steps", &cc, 0, &s->decay_steps)) ||
            (st = need_num(c, "decay_rate", &cc, 0, &s->decay_rate)) ||
            (st = dpt_json_get_bool(c, "staircase", &cc, false, &s->staircase)))
            return st;
        return DPT_OK;
    }
    if (!strcmp(cls, "CosineDecay")) {
        static const char *const keys[] = {"initial_learning_rate", "decay_steps",  "alpha", "name",
                                           "warmup_target",         "warmup_steps", NULL};
        s->kind = DPT_LR_COSINE;
        if ((st = check_keys(c, &cc, keys)) ||
            (st = need_num(c, "initial_learning_rate", &cc, 0, &s->initial_learning_rate)) ||
            (st = need_num(c, "decay_steps", &cc, 0, &s->decay_steps)) ||
            (st = dpt_json_get_num(c, "alpha", &cc, 0, 0, 1, false, &s->alpha)) ||
            (st =
                 dpt_json_get_num(c, "warmup_steps", &cc, 0, 0, HUGE_VAL, false, &s->warmup_steps)))
            return st;
        const json_t *wt = json_object_get(c, "warmup_target");
        if (wt && !json_is_null(wt)) {
            if ((st = need_num(c, "warmup_target", &cc, 0, &s->warmup_target)))
                return st;
            s->has_warmup = true;
            if (!(s->warmup_steps > 0))
                return cfg_error(&cc, "warmup_steps", "must be > 0 with a warmup_target");
        }
        return DPT_OK;
    }
    if (!strcmp(cls, "PiecewiseConstantDecay")) {
        static const char *const keys[] = {"boundaries", "values", "name", NULL};
        s->kind = DPT_LR_PIECEWISE;
        int nb = 0, nv = 0;
        if ((st = check_keys(c, &cc, keys)) ||
            (st = num_list(c, "boundaries", &cc, DPT_LR_MAX_PIECES, s->boundaries, &nb)) ||
            (st = num_list(c, "values", &cc, DPT_LR_MAX_PIECES + 1, s->values, &nv)))
            return st;
        if (nv != nb + 1)
            return cfg_error(&cc, "values", "must have one more entry than boundaries (%d), got %d",
                             nb, nv);
        for (int i = 0; i < nv; i++)
            if (!(s->values[i] > 0))
                return cfg_error(&cc, "values", "entry %d must be > 0, got %g", i, s->values[i]);
        for (int i = 1; i < nb; i++)
            if (!(s->boundaries[i] > s->boundaries[i - 1]))
                return cfg_error(&cc, "boundaries", "must be increasing");
        s->n_boundaries = nb;
        return DPT_OK;
    }
    if (!strcmp(cls, "InverseTimeDecay")) {
        static const char *const keys[] = {
            "initial_learning_rate", "decay_steps", "decay_rate", "staircase", "name", NULL};
        s->kind = DPT_LR_INVERSE_TIME;
        if ((st = check_keys(c, &cc, keys)) ||
            (st = need_num(c, "initial_learning_rate", &cc, 0, &s->initial_learning_rate)) ||
            (st = need_num(c, "decay_steps", &cc, 0, &s->decay_steps)) ||
            (st = need_num(c, "decay_rate", &cc, -1, &s->decay_rate)) ||
            (st = dpt_json_get_bool(c, "staircase", &cc, false, &s->staircase)))
            return st;
        if (s->decay_rate < 0)
            return cfg_error(&cc, "decay_rate", "must be >= 0, got %g", s->decay_rate);
        return DPT_OK;
    }
    if (!strcmp(cls, "PolynomialDecay")) {
        static const char *const keys[] = {"initial_learning_rate",
                                           "decay_steps",
                                           "end_learning_rate",
                                           "power",
                                           "cycle",
                                           "name",
                                           NULL};
        s->kind = DPT_LR_POLYNOMIAL;
        if ((st = check_keys(c, &cc, keys)) ||
            (st = need_num(c, "initial_learning_rate", &cc, 0, &s->initial_learning_rate)) ||
            (st = need_num(c, "decay_steps", &cc, 0, &s->decay_steps)) ||
            (st = dpt_json_get_num(c, "end_learning_rate", &cc, 0.0001, 0, HUGE_VAL, false,
                                   &s->end_learning_rate)) ||
            (st = dpt_json_get_num(c, "power", &cc, 1.0, 0, HUGE_VAL, false, &s->power)) ||
            (st = dpt_json_get_bool(c, "cycle", &cc, false, &s->cycle)))
            return st;
        return DPT_OK;
    }
    if (!strcmp(cls, "CosineDecayRestarts")) {
        static const char *const keys[] = {
            "initial_learning_rate", "first_decay_steps", "t_mul", "m_mul", "alpha", "name", NULL};
        s->kind = DPT_LR_COSINE_RESTARTS;
        if ((st = check_keys(c, &cc, keys)) ||
            (st = need_num(c, "initial_learning_rate", &cc, 0, &s->initial_learning_rate)) ||
            (st = need_num(c, "first_decay_steps", &cc, 0, &s->decay_steps)) ||
            (st = dpt_json_get_num(c, "t_mul", &cc, 2.0, 0, HUGE_VAL, false, &s->t_mul)) ||
            (st = dpt_json_get_num(c, "m_mul", &cc, 1.0, 0, HUGE_VAL, false, &s->m_mul)) ||
            (st = dpt_json_get_num(c, "alpha", &cc, 0, 0, 1, false, &s->alpha)))
            return st;
        if (!(s->t_mul > 0))
            return cfg_error(&cc, "t_mul", "must be > 0, got %g", s->t_mul);
        return DPT_OK;
    }
    return cfg_error(ctx, "class_name",
                     "unknown learning rate schedule \"%s\" (supported: ExponentialDecay, "
                     "CosineDecay, PiecewiseConstantDecay, InverseTimeDecay, PolynomialDecay, "
                     "CosineDecayRestarts)",
                     cls);
}

/* compile.optimizer.config's keys: the common ones and the kind's own; anything else refused */
static dpt_status check_optimizer_keys(const json_t *oc, const dpt_json_ctx *ctx,
                                       const dpt_optim_spec *s) {
    static const char *const common[] = {"name",
                                         "learning_rate",
                                         "lr",
                                         "decay",
                                         "weight_decay",
                                         "clipnorm",
                                         "clipvalue",
                                         "global_clipnorm",
                                         "use_ema",
                                         "ema_momentum",
                                         "ema_overwrite_frequency",
                                         "loss_scale_factor",
                                         "gradient_accumulation_steps",
                                         "jit_compile",
                                         "is_legacy_optimizer",
                                         NULL};
    static const char *const adam_keys[] = {"beta_1", "beta_2", "epsilon", "amsgrad", NULL};
    static const char *const sgd_keys[] = {"momentum", "nesterov", NULL};
    static const char *const rms_keys[] = {"rho", "momentum", "epsilon", "centered", NULL};
    /* Keras 3's Nadam, Adamax; Adagrad; Adadelta; Lion */
    static const char *const nadam_keys[] = {"beta_1", "beta_2", "epsilon", NULL};
    static const char *const adagrad_keys[] = {"initial_accumulator_value", "epsilon", NULL};
    static const char *const adadelta_keys[] = {"rho", "epsilon", NULL};
    static const char *const lion_keys[] = {"beta_1", "beta_2", NULL};
    const bool adam = s->kind == DPT_OPT_ADAM || s->kind == DPT_OPT_ADAMW;
    const char *const *own = adam                          ? adam_keys
                             : s->kind == DPT_OPT_SGD      ? sgd_keys
                             : s->kind == DPT_OPT_RMSPROP  ? rms_keys
                             : s->kind == DPT_OPT_ADAGRAD  ? adagrad_keys
                             : s->kind == DPT_OPT_ADADELTA ? adadelta_keys
                             : s->kind == DPT_OPT_LION     ? lion_keys
                                                           : nadam_keys;
    const char *known[32];
    int nk = 0;
    for (const char *const *k = common; *k; k++)
        known[nk++] = *k;
    for (const char *const *k = own; *k; k++)
        known[nk++] = *k;
    known[nk] = NULL;
    return check_keys(oc, ctx, known);
}

/* learning rate: "learning_rate" (Keras >= 2.3) or the legacy "lr": a number, or a
 * LearningRateSchedule object */
static dpt_status parse_learning_rate(const json_t *oc, const dpt_json_ctx *ctx,
                                      dpt_optim_spec *s) {
    dpt_status st = DPT_OK;
    const bool has_lr = json_object_get(oc, "lr") && !json_is_null(json_object_get(oc, "lr"));
    const bool has_lrn =
        json_object_get(oc, "learning_rate") && !json_is_null(json_object_get(oc, "learning_rate"));
    if (has_lr && has_lrn)
        return cfg_error(ctx, "lr", "give learning_rate or lr, not both");
    const char *lr_key = has_lr ? "lr" : "learning_rate";
    const json_t *lrv = json_object_get(oc, lr_key);
    if (json_is_object(lrv)) {
        dpt_json_ctx sctx;
        ctx_child(&sctx, ctx, ".%s", lr_key);
        if ((st = parse_schedule(lrv, &sctx, &s->schedule)) != DPT_OK)
            return st;
        s->learning_rate = dpt_lr_schedule_at(&s->schedule, 0);
    } else {
        double lr = 0;
        st = dpt_json_get_num(oc, lr_key, ctx, s->learning_rate, -HUGE_VAL, HUGE_VAL, false, &lr);
        if (st != DPT_OK)
            return st;
        if (!(lr > 0))
            return cfg_error(ctx, lr_key, "must be > 0, got %g", lr);
        s->learning_rate = lr;
    }
    return DPT_OK;
}

/* the options every Keras 3 optimizer has: weight decay, the clips, gradient accumulation; the
 * ones that change the math and that we do not implement are refused */
static dpt_status parse_optimizer_common(const json_t *oc, const dpt_json_ctx *ctx,
                                         dpt_optim_spec *s) {
    dpt_status st = DPT_OK;
    double x = 0;
    bool b = false;
    if ((st = dpt_json_get_num(oc, "decay", ctx, 0, -HUGE_VAL, HUGE_VAL, false, &x)) != DPT_OK)
        return st;
    if (x != 0)
        return cfg_error(ctx, "decay", "not supported yet (must be 0), got %g", x);
    /* decoupled weight decay (Keras 3, AdamW): null = none except AdamW's default */
    if ((st = dpt_json_get_num(oc, "weight_decay", ctx, s->weight_decay, -HUGE_VAL, HUGE_VAL, false,
                               &s->weight_decay)) != DPT_OK)
        return st;
    if (!(s->weight_decay >= 0) || !isfinite(s->weight_decay))
        return cfg_error(ctx, "weight_decay", "must be >= 0, got %g", s->weight_decay);
    if ((st = dpt_json_require_null(oc, "loss_scale_factor", ctx)) != DPT_OK)
        return st;
    if ((st = dpt_json_get_bool(oc, "use_ema", ctx, false, &b)) != DPT_OK)
        return st;
    if (b)
        return cfg_error(ctx, "use_ema", "not supported yet (must be false)");
    /* Keras 3's gradient processing (null = off): clipvalue, clipnorm (per weight tensor),
     * global_clipnorm, at most one; gradient_accumulation_steps an integer >= 2 */
    static const char *const clip_keys[] = {"clipvalue", "clipnorm", "global_clipnorm"};
    double *clip_vals[] = {&s->clipvalue, &s->clipnorm, &s->global_clipnorm};
    const char *clip_set = NULL;
    for (int i = 0; i < 3; i++) {
        if ((st = dpt_json_get_num(oc, clip_keys[i], ctx, 0, -HUGE_VAL, HUGE_VAL, false,
                                   clip_vals[i])) != DPT_OK)
            return st;
        const json_t *cv = json_object_get(oc, clip_keys[i]);
        if (cv && !json_is_null(cv) && (!isfinite(*clip_vals[i]) || !(*clip_vals[i] > 0)))
            return cfg_error(ctx, clip_keys[i], "must be a number > 0 or null, got %g",
                             *clip_vals[i]);
        if (*clip_vals[i] > 0) {
            if (clip_set)
                return cfg_error(ctx, clip_keys[i],
                                 "only one of clipnorm, clipvalue and global_clipnorm can be set "
                                 "(%s is set too)",
                                 clip_set);
            clip_set = clip_keys[i];
        }
    }
    int64_t acc_steps = 0;
    if ((st = dpt_json_get_int(oc, "gradient_accumulation_steps", ctx, 0, 2, INT_MAX,
                               &acc_steps)) != DPT_OK)
        return st;
    s->gradient_accumulation_steps = (int)acc_steps;
    /* Keras 2's OptimizerV2 Nadam (u_t = b1*(1 - 0.5*0.96^(0.004*t))) and Adagrad (epsilon
     * outside the square root) differ from Keras 3's; their configs say is_legacy_optimizer: true
     * (tf.keras >= 2.11) or carry "decay" (older). Adamax and Adadelta did not change. */
    if (s->kind == DPT_OPT_NADAM || s->kind == DPT_OPT_ADAGRAD) {
        const json_t *dk = json_object_get(oc, "decay");
        if ((st = dpt_json_get_bool(oc, "is_legacy_optimizer", ctx, false, &b)) != DPT_OK)
            return st;
        if (b || (dk && !json_is_null(dk)))
            return cfg_error(ctx, b ? "is_legacy_optimizer" : "decay",
                             "this is Keras 2's OptimizerV2 %s, whose update differs from Keras "
                             "3's; not supported (save the model with Keras 3 or tf.keras >= "
                             "2.11's non-legacy optimizer)",
                             s->kind == DPT_OPT_NADAM ? "Nadam" : "Adagrad");
    }
    return DPT_OK;
}

/* beta_1, beta_2 (< 1 in float32: the optimizer uses them as float32, as Keras does) and, when
 * eps, epsilon */
static dpt_status parse_betas(const json_t *oc, const dpt_json_ctx *ctx, bool eps,
                              dpt_optim_spec *s) {
    dpt_status st;
    if ((st = dpt_json_get_num(oc, "beta_1", ctx, s->beta_1, 0, 1, true, &s->beta_1)) != DPT_OK ||
        (st = dpt_json_get_num(oc, "beta_2", ctx, s->beta_2, 0, 1, true, &s->beta_2)) != DPT_OK ||
        (eps && (st = dpt_json_get_num(oc, "epsilon", ctx, s->epsilon, 0, HUGE_VAL, false,
                                       &s->epsilon)) != DPT_OK))
        return st;
    if ((float)s->beta_1 >= 1.0f)
        return cfg_error(ctx, "beta_1", "must be < 1 in float32, got %.9g", s->beta_1);
    if ((float)s->beta_2 >= 1.0f)
        return cfg_error(ctx, "beta_2", "must be < 1 in float32, got %.9g", s->beta_2);
    return DPT_OK;
}

/* the kind's own options */
static dpt_status parse_optimizer_kind(const json_t *oc, const dpt_json_ctx *ctx,
                                       dpt_optim_spec *s) {
    dpt_status st = DPT_OK;
    const bool adam = s->kind == DPT_OPT_ADAM || s->kind == DPT_OPT_ADAMW;
    if (adam) {
        if ((st = parse_betas(oc, ctx, true, s)) != DPT_OK ||
            (st = dpt_json_get_bool(oc, "amsgrad", ctx, false, &s->amsgrad)) != DPT_OK)
            return st;
    } else if (s->kind == DPT_OPT_NADAM || s->kind == DPT_OPT_ADAMAX) {
        if ((st = parse_betas(oc, ctx, true, s)) != DPT_OK)
            return st;
    } else if (s->kind == DPT_OPT_ADAGRAD) {
        if ((st = dpt_json_get_num(oc, "initial_accumulator_value", ctx,
                                   s->initial_accumulator_value, 0, HUGE_VAL, false,
                                   &s->initial_accumulator_value)) != DPT_OK ||
            (st = dpt_json_get_num(oc, "epsilon", ctx, s->epsilon, 0, HUGE_VAL, false,
                                   &s->epsilon)) != DPT_OK)
            return st;
    } else if (s->kind == DPT_OPT_ADADELTA) {
        if ((st = dpt_json_get_num(oc, "rho", ctx, s->rho, 0, 1, false, &s->rho)) != DPT_OK ||
            (st = dpt_json_get_num(oc, "epsilon", ctx, s->epsilon, 0, HUGE_VAL, false,
                                   &s->epsilon)) != DPT_OK)
            return st;
    } else if (s->kind == DPT_OPT_LION) {
        if ((st = dpt_json_get_num(oc, "beta_1", ctx, s->beta_1, 0, 1, false, &s->beta_1)) !=
                DPT_OK ||
            (st = dpt_json_get_num(oc, "beta_2", ctx, s->beta_2, 0, 1, false, &s->beta_2)) !=
                DPT_OK)
            return st;
        if (!(s->beta_1 > 0))
            return cfg_error(ctx, "beta_1", "must be in (0, 1] (Keras: 0 degenerates to SignSGD)");
    } else if (s->kind == DPT_OPT_RMSPROP) {
        if ((st = dpt_json_get_num(oc, "rho", ctx, s->rho, 0, 1, false, &s->rho)) != DPT_OK ||
            (st = dpt_json_get_num(oc, "momentum", ctx, s->momentum, 0, 1, false, &s->momentum)) !=
                DPT_OK ||
            (st = dpt_json_get_num(oc, "epsilon", ctx, s->epsilon, 0, HUGE_VAL, false,
                                   &s->epsilon)) != DPT_OK ||
            (st = dpt_json_get_bool(oc, "centered", ctx, false, &s->centered)) != DPT_OK)
            return st;
    } else {
        if ((st = dpt_json_get_num(oc, "momentum", ctx, s->momentum, 0, 1, false, &s->momentum)) !=
                DPT_OK ||
            (st = dpt_json_get_bool(oc, "nesterov", ctx, s->nesterov, &s->nesterov)) != DPT_OK)
            return st;
    }
    return DPT_OK;
}

static dpt_status parse_optimizer_config(const json_t *oc, const dpt_json_ctx *ctx,
                                         dpt_optim_spec *s) {
    dpt_status st = check_optimizer_keys(oc, ctx, s);
    if (st == DPT_OK)
        st = parse_learning_rate(oc, ctx, s);
    if (st == DPT_OK)
        st = parse_optimizer_common(oc, ctx, s);
    if (st == DPT_OK)
        st = parse_optimizer_kind(oc, ctx, s);
    return st;
}

static bool optimizer_kind(const char *name, dpt_optim_kind *k) {
    if (!strcasecmp(name, "adam"))
        *k = DPT_OPT_ADAM;
    else if (!strcasecmp(name, "sgd"))
        *k = DPT_OPT_SGD;
    else if (!strcasecmp(name, "rmsprop"))
        *k = DPT_OPT_RMSPROP;
    else if (!strcasecmp(name, "adamw"))
        *k = DPT_OPT_ADAMW;
    else if (!strcasecmp(name, "nadam"))
        *k = DPT_OPT_NADAM;
    else if (!strcasecmp(name, "adamax"))
        *k = DPT_OPT_ADAMAX;
    else if (!strcasecmp(name, "adagrad"))
        *k = DPT_OPT_ADAGRAD;
    else if (!strcasecmp(name, "adadelta"))
        *k = DPT_OPT_ADADELTA;
    else if (!strcasecmp(name, "lion"))
        *k = DPT_OPT_LION;
    else
        return false;
    return true;
}

static dpt_status parse_optimizer(const json_t *comp, const dpt_json_ctx *cctx, dpt_optim_spec *s) {
    const json_t *o = comp ? json_object_get(comp, "optimizer") : NULL;
    dpt_optim_kind kind = DPT_OPT_ADAM;
    if (!o || json_is_null(o)) {
        *s = dpt_optim_defaults(kind);
        return DPT_OK;
    }
    if (json_is_string(o)) {
        if (!optimizer_kind(json_string_value(o), &kind))
            return cfg_error(
                cctx, "optimizer",
                "unknown optimizer \"%s\" (supported: adadelta, adagrad, adam, adamax, "
                "adamw, lion, nadam, rmsprop, sgd)",
                json_string_value(o));
        *s = dpt_optim_defaults(kind);
        return DPT_OK;
    }
    dpt_json_ctx octx, ocfg;
    ctx_child(&octx, cctx, ".optimizer");
    if (!json_is_object(o))
        return cfg_error(&octx, NULL,
                         "must be a name (\"adam\", \"adamw\", \"rmsprop\", \"sgd\") or a Keras "
                         "optimizer object, got %s",
                         dpt_json_type_name(o));
    const json_t *cn = json_object_get(o, "class_name");
    if (!json_is_string(cn))
        return cn ? cfg_error(&octx, "class_name", "must be a string, got %s",
                              dpt_json_type_name(cn))
                  : cfg_error(&octx, "class_name",
                              "required (\"Adam\", \"AdamW\", \"RMSprop\" "
                              "or \"SGD\")");
    if (!optimizer_kind(json_string_value(cn), &kind))
        return cfg_error(&octx, "class_name",
                         "unknown optimizer \"%s\" (supported: Adadelta, Adagrad, Adam, Adamax, "
                         "AdamW, Lion, Nadam, RMSprop, SGD)",
                         json_string_value(cn));
    *s = dpt_optim_defaults(kind);
    const json_t *oc = json_object_get(o, "config");
    if (!oc || json_is_null(oc))
        return DPT_OK;
    ctx_child(&ocfg, &octx, ".config");
    if (!json_is_object(oc))
        return cfg_error(&ocfg, NULL, "must be an object, got %s", dpt_json_type_name(oc));
    return parse_optimizer_config(oc, &ocfg, s);
}

/* Keras's `reduction` of a loss object: only the mean over the batch is implemented. */
static dpt_status parse_reduction(const json_t *cfg, const dpt_json_ctx *ctx) {
    const json_t *r = json_object_get(cfg, "reduction");
    if (!r)
        return DPT_OK;
    const char *red = json_string_value(r);
    if (red &&
        (!strcmp(red, "sum_over_batch_size") || !strcmp(red, "auto") || !strcmp(red, "mean")))
        return DPT_OK;
    if (red)
        return cfg_error(ctx, "reduction",
                         "not supported (must be \"sum_over_batch_size\"), got \"%s\"", red);
    return cfg_error(ctx, "reduction", "not supported (must be \"sum_over_batch_size\"), got %s",
                     json_is_null(r) ? "null" : dpt_json_type_name(r));
}

/* The config of a Keras loss object of kind `k` (a loss, or a loss-function metric when
 * `metric`): the keys Keras writes for that class, the options we implement, the rest refused. */
static dpt_status parse_loss_config(const json_t *lc, const dpt_json_ctx *ctx, bool metric,
                                    dpt_loss_spec *s) {
    dpt_loss_kind k = s->kind;
    bool ce = k == DPT_LOSS_BINARY_CROSSENTROPY || k == DPT_LOSS_CATEGORICAL_CROSSENTROPY ||
              k == DPT_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY;
    bool focal = k == DPT_LOSS_BINARY_FOCAL_CROSSENTROPY;
    bool smooth =
        k == DPT_LOSS_BINARY_CROSSENTROPY || k == DPT_LOSS_CATEGORICAL_CROSSENTROPY || focal;
    const char *keys[16];
    int n = 0;
    keys[n++] = "name";
    keys[n++] = "dtype";
    if (!metric)
        keys[n++] = "reduction";
    if (ce || focal) {
        keys[n++] = "from_logits";
        keys[n++] = "axis";
    }
    if (smooth)
        keys[n++] = "label_smoothing";
    if (k == DPT_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY)
        keys[n++] = "ignore_class";
    if (k == DPT_LOSS_HUBER)
        keys[n++] = "delta";
    if (k == DPT_LOSS_COSINE_SIMILARITY)
        keys[n++] = "axis";
    if (focal) {
        keys[n++] = "apply_class_balancing";
        keys[n++] = "alpha";
        keys[n++] = "gamma";
    }
    keys[n] = NULL;
    dpt_status st = check_keys(lc, ctx, keys);
    if (st != DPT_OK || (!metric && (st = parse_reduction(lc, ctx)) != DPT_OK))
        return st;
    double x = 0;
    int64_t axis = -1;
    if ((st = dpt_json_get_int(lc, "axis", ctx, -1, INT64_MIN, INT64_MAX, &axis)) != DPT_OK)
        return st;
    if (axis != -1)
        return cfg_error(ctx, "axis", "not supported (must be -1), got %lld", (long long)axis);
    if ((st = dpt_json_require_null(lc, "ignore_class", ctx)) != DPT_OK ||
        (st = dpt_json_get_bool(lc, "from_logits", ctx, false, &s->from_logits)) != DPT_OK ||
        (st = dpt_json_get_num(lc, "label_smoothing", ctx, 0, 0, 1, false, &x)) != DPT_OK)
        return st;
    s->label_smoothing = (float)x;
    if ((st = dpt_json_get_num(lc, "delta", ctx, 1.0, 0, HUGE_VAL, false, &x)) != DPT_OK)
        return st;
    s->delta = (float)x;
    if ((st = dpt_json_get_num(lc, "gamma", ctx, 2.0, 0, HUGE_VAL, false, &x)) != DPT_OK)
        return st;
    s->gamma = (float)x;
    if ((st = dpt_json_get_num(lc, "alpha", ctx, 0.25, 0, 1, false, &x)) != DPT_OK)
        return st;
    s->alpha = (float)x;
    return dpt_json_get_bool(lc, "apply_class_balancing", ctx, false, &s->class_balancing);
}

static dpt_status parse_loss(const json_t *comp, const dpt_json_ctx *cctx, dpt_loss_spec *loss) {
    const json_t *l = comp ? json_object_get(comp, "loss") : NULL;
    dpt_loss_kind k;
    if (!l || json_is_null(l))
        return cfg_error(cctx, "loss", "required");
    if (json_is_string(l)) {
        if (!dpt_loss_from_name(json_string_value(l), &k)) {
            char known[1024];
            dpt_loss_names(false, known, sizeof known);
            return cfg_error(cctx, "loss", "unknown loss \"%s\" (supported: %s)",
                             json_string_value(l), known);
        }
        *loss = dpt_loss_spec_default(k);
        return DPT_OK;
    }
    dpt_json_ctx lctx, cfgctx;
    ctx_child(&lctx, cctx, ".loss");
    if (!json_is_object(l))
        return cfg_error(&lctx, NULL, "must be a loss name or a Keras loss object, got %s",
                         dpt_json_type_name(l));
    const json_t *cn = json_object_get(l, "class_name");
    if (!json_is_string(cn))
        return cn ? cfg_error(&lctx, "class_name", "must be a string, got %s",
                              dpt_json_type_name(cn))
                  : cfg_error(&lctx, "class_name", "required (e.g. \"BinaryCrossentropy\")");
    const json_t *lc = json_object_get(l, "config");
    const char *cls = json_string_value(cn);
    bool fn = !strcmp(cls, "function") && json_is_string(lc); /* a loss function by name */
    /* a class name: upper case first (dpt_loss_from_name also knows the function names, which
     * Keras accepts as strings but not as class_name) */
    if (!(fn ? dpt_loss_from_name(json_string_value(lc), &k)
             : (cls[0] >= 'A' && cls[0] <= 'Z' && dpt_loss_from_name(cls, &k)))) {
        char known[1024];
        dpt_loss_names(!fn, known, sizeof known);
        return cfg_error(&lctx, "class_name", "unknown loss \"%s\" (supported: %s)",
                         fn ? json_string_value(lc) : cls, known);
    }
    *loss = dpt_loss_spec_default(k);
    if (!lc || json_is_null(lc) || fn)
        return DPT_OK;
    ctx_child(&cfgctx, &lctx, ".config");
    if (!json_is_object(lc))
        return cfg_error(&cfgctx, NULL, "must be an object, got %s", dpt_json_type_name(lc));
    return parse_loss_config(lc, &cfgctx, false, loss);
}

/* The config of a Keras metric object. */
static dpt_status parse_metric_config(const char *cls, const json_t *mc, const dpt_json_ctx *ctx,
                                      dpt_metric *m) {
    dpt_status st;
    const char *name = NULL;
    if ((st = dpt_json_get_str(mc, "name", ctx, NULL, &name)) != DPT_OK)
        return st;
    if (name) {
        /* a column of history.csv and a key of history.jsonl: plain characters only */
        bool plain = name[0] && strlen(name) < sizeof m->name;
        for (const char *q = name; plain && *q; q++)
            plain = (*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') ||
                    (*q >= '0' && *q <= '9') || *q == '_' || *q == '-' || *q == '.';
        if (!plain)
            return cfg_error(ctx, "name",
                             "must be 1 to %d letters, digits, '_', '-' or '.', got \"%s\"",
                             (int)sizeof m->name - 1, name);
        snprintf(m->name, sizeof m->name, "%s", name);
    }
    if (m->kind == DPT_METRIC_LOSS)
        return parse_loss_config(mc, ctx, true, &m->loss);
    int64_t i64 = 0;
    double x = 0;
    switch (m->kind) {
    case DPT_METRIC_BINARY_ACCURACY: {
        static const char *const keys[] = {"name", "dtype", "threshold", NULL};
        if ((st = check_keys(mc, ctx, keys)) != DPT_OK ||
            (st = dpt_json_get_num(mc, "threshold", ctx, 0.5, -HUGE_VAL, HUGE_VAL, false, &x)) !=
                DPT_OK)
            return st;
        m->threshold = (float)x;
        return DPT_OK;
    }
    case DPT_METRIC_TOP_K_CATEGORICAL_ACCURACY:
    case DPT_METRIC_SPARSE_TOP_K_CATEGORICAL_ACCURACY: {
        static const char *const keys[] = {"name", "dtype", "k", "from_sorted_ids", NULL};
        bool sorted = false;
        if ((st = check_keys(mc, ctx, keys)) != DPT_OK ||
            (st = dpt_json_get_int(mc, "k", ctx, 5, 1, INT32_MAX, &i64)) != DPT_OK ||
            (st = dpt_json_get_bool(mc, "from_sorted_ids", ctx, false, &sorted)) != DPT_OK)
            return st;
        if (sorted)
            return cfg_error(ctx, "from_sorted_ids", "not supported (must be false)");
        m->k = (int)i64;
        return DPT_OK;
    }
    case DPT_METRIC_AUC: {
        static const char *const keys[] = {
            "name",        "dtype",      "num_thresholds", "curve",       "summation_method",
            "multi_label", "num_labels", "label_weights",  "from_logits", "thresholds",
            NULL};
        const char *curve = NULL, *sum = NULL;
        bool ml = false;
        if ((st = check_keys(mc, ctx, keys)) != DPT_OK ||
            (st = dpt_json_get_int(mc, "num_thresholds", ctx, 200, 2, 1000000, &i64)) != DPT_OK ||
            (st = dpt_json_get_str(mc, "curve", ctx, "ROC", &curve)) != DPT_OK ||
            (st = dpt_json_get_str(mc, "summation_method", ctx, "interpolation", &sum)) != DPT_OK ||
            (st = dpt_json_get_bool(mc, "multi_label", ctx, false, &ml)) != DPT_OK ||
            (st = dpt_json_require_null(mc, "num_labels", ctx)) != DPT_OK ||
            (st = dpt_json_require_null(mc, "label_weights", ctx)) != DPT_OK ||
            (st = dpt_json_require_null(mc, "thresholds", ctx)) != DPT_OK ||
            (st = dpt_json_get_bool(mc, "from_logits", ctx, false, &m->from_logits)) != DPT_OK)
            return st;
        m->num_thresholds = (int)i64;
        if (strcasecmp(curve, "ROC") && strcasecmp(curve, "PR"))
            return cfg_error(ctx, "curve", "not supported (must be \"ROC\" or \"PR\"), got \"%s\"",
                             curve);
        m->pr = !strcasecmp(curve, "PR");
        if (strcasecmp(sum, "interpolation"))
            return cfg_error(ctx, "summation_method",
                             "not supported (must be \"interpolation\"), got \"%s\"", sum);
        if (ml)
            return cfg_error(ctx, "multi_label", "not supported (must be false)");
        return DPT_OK;
    }
    case DPT_METRIC_PRECISION:
    case DPT_METRIC_RECALL: {
        static const char *const keys[] = {"name",  "dtype",    "thresholds",
                                           "top_k", "class_id", NULL};
        if ((st = check_keys(mc, ctx, keys)) != DPT_OK ||
            (st = dpt_json_require_null(mc, "top_k", ctx)) != DPT_OK ||
            (st = dpt_json_require_null(mc, "class_id", ctx)) != DPT_OK)
            return st;
        const json_t *t = json_object_get(mc, "thresholds");
        if (json_is_array(t) && json_array_size(t) == 1)
            t = json_array_get(t, 0);
        if (t && !json_is_null(t)) {
            if (!json_is_number(t) || json_number_value(t) < 0 || json_number_value(t) > 1)
                return cfg_error(ctx, "thresholds",
                                 "not supported (must be null or one number in [0, 1])");
            m->threshold = (float)json_number_value(t);
        }
        return DPT_OK;
    }
    default: {
        static const char *const keys[] = {"name", "dtype", NULL};
        (void)cls;
        return check_keys(mc, ctx, keys);
    }
    }
}

static dpt_status parse_metric(const json_t *v, const dpt_json_ctx *ictx, dpt_metric *m) {
    if (json_is_string(v)) {
        if (!dpt_metric_from_name(json_string_value(v), m))
            return cfg_error(ictx, NULL,
                             "unsupported metric \"%s\" (supported: " DPT_METRIC_NAMES ")",
                             json_string_value(v));
        return DPT_OK;
    }
    if (!json_is_object(v))
        return cfg_error(ictx, NULL,
                         "must be a metric name or a Keras metric object, got %s (supported: "
                         "\"accuracy\", ...)",
                         dpt_json_type_name(v));
    const json_t *cn = json_object_get(v, "class_name");
    if (!json_is_string(cn))
        return cfg_error(ictx, "class_name", "required (e.g. \"AUC\")");
    const char *cls = json_string_value(cn);
    const json_t *mc = json_object_get(v, "config");
    if (!strcmp(cls, "function") && json_is_string(mc)) { /* a metric function by name */
        if (!dpt_metric_from_name(json_string_value(mc), m))
            return cfg_error(ictx, "config", "unsupported metric \"%s\"", json_string_value(mc));
        return DPT_OK;
    }
    const char *dname = dpt_metric_default_name(cls);
    if (!dname || !dpt_metric_from_name(cls, m))
        return cfg_error(ictx, "class_name",
                         "unsupported metric \"%s\" (supported: BinaryAccuracy, "
                         "CategoricalAccuracy, SparseCategoricalAccuracy, "
                         "TopKCategoricalAccuracy, SparseTopKCategoricalAccuracy, "
                         "MeanAbsoluteError, MeanSquaredError, RootMeanSquaredError, AUC, "
                         "Precision, Recall, and the loss classes)",
                         cls);
    snprintf(m->name, sizeof m->name, "%s", dname);
    if (!mc || json_is_null(mc))
        return DPT_OK;
    dpt_json_ctx cctx;
    ctx_child(&cctx, ictx, ".config");
    if (!json_is_object(mc))
        return cfg_error(&cctx, NULL, "must be an object, got %s", dpt_json_type_name(mc));
    return parse_metric_config(cls, mc, &cctx, m);
}

static dpt_status parse_metrics(const json_t *comp, const dpt_json_ctx *cctx, dpt_metrics_spec *ms,
                                bool *accuracy) {
    const json_t *m = comp ? json_object_get(comp, "metrics") : NULL;
    memset(ms, 0, sizeof *ms);
    *accuracy = false;
    if (!m || json_is_null(m))
        return DPT_OK;
    if (!json_is_array(m))
        return cfg_error(cctx, "metrics", "must be a list (e.g. [\"accuracy\"]), got %s",
                         dpt_json_type_name(m));
    if (json_array_size(m) > DPT_MAX_METRICS)
        return cfg_error(cctx, "metrics", "at most %d metrics, got %zu", DPT_MAX_METRICS,
                         json_array_size(m));
    for (size_t i = 0; i < json_array_size(m); i++) {
        dpt_json_ctx ictx;
        ctx_child(&ictx, cctx, ".metrics[%zu]", i);
        dpt_metric *mt = &ms->m[ms->n];
        dpt_status st = parse_metric(json_array_get(m, i), &ictx, mt);
        if (st != DPT_OK)
            return st;
        if (!strcmp(mt->name, "loss"))
            return cfg_error(&ictx, NULL, "a metric may not be named \"loss\"");
        for (int j = 0; j < ms->n; j++)
            if (!strcmp(ms->m[j].name, mt->name))
                return cfg_error(&ictx, NULL,
                                 "a second metric named \"%s\" (give it another \"name\")",
                                 mt->name);
        *accuracy = *accuracy || mt->kind == DPT_METRIC_ACCURACY;
        ms->n++;
    }
    return DPT_OK;
}

static dpt_status parse_compile(const json_t *root, const dpt_json_ctx *top, dpt_config *c) {
    const json_t *comp = NULL;
    dpt_status st = get_section(root, "compile", top, &comp);
    if (st != DPT_OK)
        return st;
    dpt_json_ctx cctx;
    ctx_child(&cctx, top, ".compile");
    if (comp) {
        /* besides ours, the keys of Keras 3's compile_config that do not change the math */
        static const char *const keys[] = {"optimizer",
                                           "loss",
                                           "metrics",
                                           "loss_weights",
                                           "weighted_metrics",
                                           "run_eagerly",
                                           "steps_per_execution",
                                           "jit_compile",
                                           "auto_scale_loss",
                                           NULL};
        bool b;
        int64_t i64;
        if ((st = check_keys(comp, &cctx, keys)) != DPT_OK ||
            (st = dpt_json_require_null(comp, "loss_weights", &cctx)) != DPT_OK ||
            (st = dpt_json_require_null(comp, "weighted_metrics", &cctx)) != DPT_OK ||
            (st = dpt_json_get_bool(comp, "run_eagerly", &cctx, false, &b)) != DPT_OK ||
            (st = dpt_json_get_bool(comp, "jit_compile", &cctx, false, &b)) != DPT_OK ||
            (st = dpt_json_get_bool(comp, "auto_scale_loss", &cctx, true, &b)) != DPT_OK ||
            (st = dpt_json_get_int(comp, "steps_per_execution", &cctx, 1, 1, INT64_MAX, &i64)) !=
                DPT_OK)
            return st;
    }
    if ((st = parse_optimizer(comp, &cctx, &c->optim)) != DPT_OK)
        return st;
    if ((st = parse_loss(comp, &cctx, &c->loss_spec)) != DPT_OK)
        return st;
    c->loss = c->loss_spec.kind;
    return parse_metrics(comp, &cctx, &c->metrics, &c->metric_accuracy);
}

/* ---- fit, data, checkpoint ----------------------------------------------------------------- */

/* A metric of compile.metrics (not "accuracy") named `name` or "val_" + its name: its monitor
 * (DPT_MON_METRIC + 2i [+ 1]) and Keras's direction (+1: higher is better); false if none. */
static bool metric_monitor(const dpt_metrics_spec *ms, const char *name, dpt_monitor *mon,
                           int *up) {
    bool val = !strncmp(name, "val_", 4);
    for (int i = 0, j = 0; i < ms->n; i++) {
        const dpt_metric *m = &ms->m[i];
        if (m->kind == DPT_METRIC_ACCURACY)
            continue;
        if (!strcmp(name, m->name) || (val && !strcmp(name + 4, m->name))) {
            bool v = strcmp(name, m->name) != 0;
            *mon = (dpt_monitor)(DPT_MON_METRIC + 2 * j + (v ? 1 : 0));
            /* Keras's _direction: errors and losses down, the rest up */
            *up = !(m->kind == DPT_METRIC_MAE || m->kind == DPT_METRIC_MSE ||
                    m->kind == DPT_METRIC_RMSE || m->kind == DPT_METRIC_LOSS);
            return true;
        }
        j++;
    }
    return false;
}

/* monitor + mode of a callback config; mode "auto": max for accuracies ("acc" in the name, as
 * Keras) and for metrics whose Keras direction is up, min for losses and errors */
static dpt_status parse_monitor(const json_t *cfg, const dpt_json_ctx *ctx,
                                const dpt_metrics_spec *ms, dpt_monitor *mon, int *mode) {
    const char *name = NULL, *m = NULL;
    dpt_status st = dpt_json_get_str(cfg, "monitor", ctx, "val_loss", &name);
    if (st != DPT_OK)
        return st;
    int up = 0;
    if (dpt_monitor_from_name(name, mon))
        up = *mon == DPT_MON_ACCURACY || *mon == DPT_MON_VAL_ACCURACY;
    else if (!metric_monitor(ms, name, mon, &up))
        return cfg_error(ctx, "monitor",
                         "unknown quantity \"%s\" (supported: loss, accuracy, val_loss, "
                         "val_accuracy, and the compile.metrics by name, with or without "
                         "val_)",
                         name);
    if ((st = dpt_json_get_str(cfg, "mode", ctx, "auto", &m)) != DPT_OK)
        return st;
    if (!strcmp(m, "min"))
        *mode = -1;
    else if (!strcmp(m, "max"))
        *mode = 1;
    else if (!strcmp(m, "auto"))
        *mode = up ? 1 : -1;
    else
        return cfg_error(ctx, "mode", "must be \"auto\", \"min\" or \"max\", got \"%s\"", m);
    return DPT_OK;
}

static dpt_status parse_callbacks(const json_t *list, const dpt_json_ctx *fctx,
                                  const dpt_metrics_spec *ms, dpt_callbacks_spec *cb) {
    memset(cb, 0, sizeof *cb);
    if (!list || json_is_null(list))
        return DPT_OK;
    if (!json_is_array(list))
        return cfg_error(fctx, "callbacks", "must be a list of Keras callback objects, got %s",
                         dpt_json_type_name(list));
    for (size_t i = 0; i < json_array_size(list); i++) {
        const json_t *e = json_array_get(list, i);
        dpt_json_ctx ectx, cctx;
        ctx_child(&ectx, fctx, ".callbacks[%zu]", i);
        const char *cls = json_string_value(json_object_get(e, "class_name"));
        if (!json_is_object(e) || !cls)
            return cfg_error(&ectx, "class_name",
                             "required (\"EarlyStopping\" or \"ReduceLROnPlateau\")");
        const json_t *c = json_object_get(e, "config");
        json_t *empty = NULL;
        if (!c || json_is_null(c))
            c = empty = json_object();
        ctx_child(&cctx, &ectx, ".config");
        dpt_status st = DPT_OK;
        int64_t i64 = 0;
        if (!json_is_object(c)) {
            st = cfg_error(&cctx, NULL, "must be an object, got %s", dpt_json_type_name(c));
        } else if (!strcmp(cls, "EarlyStopping")) {
            static const char *const keys[] = {"monitor",
                                               "min_delta",
                                               "patience",
                                               "verbose",
                                               "mode",
                                               "baseline",
                                               "restore_best_weights",
                                               "start_from_epoch",
                                               NULL};
            dpt_early_stopping_spec *es = &cb->early_stopping;
            if (es->enabled)
                st = cfg_error(&ectx, NULL, "only one EarlyStopping is supported");
            if (!st)
                st = check_keys(c, &cctx, keys);
            if (!st)
                st = parse_monitor(c, &cctx, ms, &es->monitor, &es->mode);
            if (!st)
                st = dpt_json_get_num(c, "min_delta", &cctx, 0, -HUGE_VAL, HUGE_VAL, false,
                                      &es->min_delta);
            if (!st)
                st = dpt_json_get_int(c, "patience", &cctx, 0, 0, INT_MAX, &i64);
            es->patience = (int)i64;
            if (!st)
                st = dpt_json_get_bool(c, "restore_best_weights", &cctx, false,
                                       &es->restore_best_weights);
            if (!st)
                st = dpt_json_get_int(c, "start_from_epoch", &cctx, 0, 0, INT_MAX, &i64);
            es->start_from_epoch = (int)i64;
            if (!st && json_object_get(c, "baseline") &&
                !json_is_null(json_object_get(c, "baseline"))) {
                es->has_baseline = true;
                st = dpt_json_get_num(c, "baseline", &cctx, 0, -HUGE_VAL, HUGE_VAL, false,
                                      &es->baseline);
            }
            if (!st)
                st = dpt_json_get_int(c, "verbose", &cctx, 0, 0, 2, &i64);
            es->min_delta = fabs(es->min_delta);
            es->enabled = st == DPT_OK;
        } else if (!strcmp(cls, "ReduceLROnPlateau")) {
            static const char *const keys[] = {"monitor", "factor",    "patience", "verbose",
                                               "mode",    "min_delta", "epsilon",  "cooldown",
                                               "min_lr",  NULL};
            dpt_reduce_lr_spec *r = &cb->reduce_lr;
            if (r->enabled)
                st = cfg_error(&ectx, NULL, "only one ReduceLROnPlateau is supported");
            if (!st)
                st = check_keys(c, &cctx, keys);
            if (!st)
                st = parse_monitor(c, &cctx, ms, &r->monitor, &r->mode);
            if (!st)
                st = dpt_json_get_num(c, "factor", &cctx, 0.1, 0, 1, true, &r->factor);
            if (!st && !(r->factor > 0))
                st = cfg_error(&cctx, "factor", "must be in (0, 1), got %g", r->factor);
            if (!st)
                st = dpt_json_get_int(c, "patience", &cctx, 10, 0, INT_MAX, &i64);
            r->patience = (int)i64;
            /* "epsilon" is Keras 2's old name of min_delta */
            const char *md = json_object_get(c, "min_delta") ? "min_delta" : "epsilon";
            if (!st)
                st = dpt_json_get_num(c, md, &cctx, 1e-4, 0, HUGE_VAL, false, &r->min_delta);
            if (!st)
                st = dpt_json_get_int(c, "cooldown", &cctx, 0, 0, INT_MAX, &i64);
            r->cooldown = (int)i64;
            if (!st)
                st = dpt_json_get_num(c, "min_lr", &cctx, 0, 0, HUGE_VAL, false, &r->min_lr);
            if (!st)
                st = dpt_json_get_int(c, "verbose", &cctx, 0, 0, 2, &i64);
            r->enabled = st == DPT_OK;
        } else {
            st = cfg_error(&ectx, "class_name",
                           "unsupported callback \"%s\" (supported: EarlyStopping, "
                           "ReduceLROnPlateau; checkpoints and history are built in)",
                           cls);
        }
        json_decref(empty);
        if (st != DPT_OK)
            return st;
    }
    return DPT_OK;
}

/* fit.class_weight: {"0": w0, "1": w1, ...} (Keras's dict; JSON keys are strings); classes not
 * listed weigh 1, as Keras's class_weight.get(class, 1.0). */
#define DPT_MAX_CLASS_WEIGHTS 1000000
static dpt_status parse_class_weight(const json_t *cw, const dpt_json_ctx *fctx, dpt_config *c) {
    c->class_weight = NULL;
    c->n_class_weight = 0;
    if (!cw || json_is_null(cw))
        return DPT_OK;
    if (!json_is_object(cw))
        return cfg_error(fctx, "class_weight",
                         "must be an object of class index -> weight (e.g. {\"0\": 1.0, "
                         "\"1\": 5.0}), got %s",
                         dpt_json_type_name(cw));
    dpt_json_ctx ctx;
    ctx_child(&ctx, fctx, ".class_weight");
    const char *key;
    const json_t *v;
    int64_t n = 0;
    json_object_foreach((json_t *)cw, key, v) {
        char *end = NULL;
        errno = 0;
        long long k = strtoll(key, &end, 10);
        if (!key[0] || *end || errno || k < 0 || k >= DPT_MAX_CLASS_WEIGHTS)
            return cfg_error(&ctx, key, "not a class index (an integer in [0, %d))",
                             DPT_MAX_CLASS_WEIGHTS);
        if (!json_is_number(v) || !isfinite(json_number_value(v)))
            return cfg_error(&ctx, key, "must be a finite number, got %s", dpt_json_type_name(v));
        if (k + 1 > n)
            n = k + 1;
    }
    if (n == 0)
        return DPT_OK;
    c->class_weight = malloc((size_t)n * sizeof *c->class_weight);
    if (!c->class_weight)
        return dpt_error_set(DPT_ERR_NOMEM, "%s: fit.class_weight: out of memory", fctx->file);
    for (int64_t i = 0; i < n; i++)
        c->class_weight[i] = 1.0;
    json_object_foreach((json_t *)cw, key, v) c->class_weight[strtoll(key, NULL, 10)] =
        json_number_value(v);
    c->n_class_weight = n;
    return DPT_OK;
}

static dpt_status parse_fit(const json_t *root, const dpt_json_ctx *top, dpt_config *c) {
    const json_t *fit = NULL;
    dpt_status st = get_section(root, "fit", top, &fit);
    c->epochs = 1;
    c->batch_size = 32;
    c->validation_split = 0;
    c->shuffle = true;
    c->seed = 0;
    c->reproducible = false;
    c->micro_batch = 32;
    if (st != DPT_OK || !fit)
        return st;
    dpt_json_ctx ctx;
    ctx_child(&ctx, top, ".fit");
    static const char *const keys[] = {
        "epochs",    "batch_size",   "validation_split", "shuffle",      "seed",
        "callbacks", "reproducible", "micro_batch",      "class_weight", NULL};
    int64_t epochs = 1, seed = 0;
    if ((st = check_keys(fit, &ctx, keys)) != DPT_OK ||
        (st = dpt_json_get_int(fit, "epochs", &ctx, 1, 1, INT_MAX, &epochs)) != DPT_OK ||
        (st = dpt_json_get_int(fit, "batch_size", &ctx, 32, 1, (int64_t)1 << 31, &c->batch_size)) !=
            DPT_OK ||
        (st = dpt_json_get_num(fit, "validation_split", &ctx, 0, 0, 1, true,
                               &c->validation_split)) != DPT_OK ||
        (st = dpt_json_get_bool(fit, "shuffle", &ctx, true, &c->shuffle)) != DPT_OK ||
        (st = dpt_json_get_int(fit, "seed", &ctx, 0, 0, UINT32_MAX, &seed)) != DPT_OK ||
        (st = dpt_json_get_bool(fit, "reproducible", &ctx, false, &c->reproducible)) != DPT_OK ||
        (st = dpt_json_get_int(fit, "micro_batch", &ctx, 32, 1, 1 << 20, &c->micro_batch)) !=
            DPT_OK)
        return st;
    c->epochs = (int)epochs;
    c->seed = (uint32_t)seed;
    if ((st = parse_class_weight(json_object_get(fit, "class_weight"), &ctx, c)) != DPT_OK)
        return st;
    return parse_callbacks(json_object_get(fit, "callbacks"), &ctx, &c->metrics, &c->callbacks);
}

static dpt_status parse_data(const json_t *root, const dpt_json_ctx *top, dpt_config *c) {
    const json_t *d = NULL;
    dpt_status st = get_section(root, "data", top, &d);
    snprintf(c->train_group, sizeof c->train_group, "train");
    c->data_path[0] = c->validation_group[0] = c->test_group[0] = '\0';
    if (st != DPT_OK || !d)
        return st;
    dpt_json_ctx ctx;
    ctx_child(&ctx, top, ".data");
    static const char *const keys[] = {"path", "train", "validation", "test", NULL};
    if ((st = check_keys(d, &ctx, keys)) != DPT_OK ||
        (st = get_str_buf(d, "path", &ctx, NULL, c->data_path, sizeof c->data_path)) != DPT_OK ||
        (st = get_str_buf(d, "train", &ctx, "train", c->train_group, sizeof c->train_group)) !=
            DPT_OK ||
        (st = get_str_buf(d, "validation", &ctx, NULL, c->validation_group,
                          sizeof c->validation_group)) != DPT_OK ||
        (st = get_str_buf(d, "test", &ctx, NULL, c->test_group, sizeof c->test_group)) != DPT_OK)
        return st;
    return DPT_OK;
}

static dpt_status parse_checkpoint(const json_t *root, const dpt_json_ctx *top, dpt_config *c) {
    const json_t *k = NULL;
    dpt_status st = get_section(root, "checkpoint", top, &k);
    c->checkpoint_every = 0;
    c->keep = 3;
    if (st != DPT_OK || !k)
        return st;
    dpt_json_ctx ctx;
    ctx_child(&ctx, top, ".checkpoint");
    static const char *const keys[] = {"every", "keep", NULL};
    if ((st = check_keys(k, &ctx, keys)) != DPT_OK)
        return st;
    const json_t *every = json_object_get(k, "every");
    if (json_is_string(every)) {
        if (strcmp(json_string_value(every), "epoch") != 0)
            return cfg_error(&ctx, "every", "must be a number of steps or \"epoch\", got \"%s\"",
                             json_string_value(every));
        c->checkpoint_every = 0;
    } else if ((st = dpt_json_get_int(k, "every", &ctx, 0, 0, INT64_MAX, &c->checkpoint_every)) !=
               DPT_OK) {
        return st;
    }
    int64_t keep = 3;
    if ((st = dpt_json_get_int(k, "keep", &ctx, 3, 0, INT_MAX, &keep)) != DPT_OK)
        return st;
    c->keep = (int)keep;
    return DPT_OK;
}

/* ---- the whole config ---------------------------------------------------------------------- */

/* What the sections say together: ReduceLROnPlateau cannot change a scheduled learning rate (Keras
 * raises a TypeError), and a val_* monitor needs validation data. */
static dpt_status check_callbacks(const dpt_config *c, const dpt_json_ctx *top) {
    const dpt_callbacks_spec *cb = &c->callbacks;
    dpt_json_ctx fctx;
    ctx_child(&fctx, top, ".fit.callbacks");
    if (cb->reduce_lr.enabled && c->optim.schedule.kind != DPT_LR_CONSTANT)
        return cfg_error(&fctx, NULL,
                         "ReduceLROnPlateau needs a constant learning rate, but the optimizer's "
                         "learning_rate is a schedule");
    bool val = c->validation_split > 0 || c->validation_group[0];
    dpt_monitor mons[2] = {cb->early_stopping.monitor, cb->reduce_lr.monitor};
    bool on[2] = {cb->early_stopping.enabled, cb->reduce_lr.enabled};
    const char *names[2] = {"EarlyStopping", "ReduceLROnPlateau"};
    for (int i = 0; i < 2; i++)
        if (on[i] && !val &&
            (mons[i] == DPT_MON_VAL_LOSS || mons[i] == DPT_MON_VAL_ACCURACY ||
             (mons[i] >= DPT_MON_METRIC && (mons[i] - DPT_MON_METRIC) % 2 == 1)))
            return cfg_error(
                &fctx, NULL,
                "%s monitors %s but there is no validation data (set "
                "fit.validation_split or data.validation, or monitor loss)",
                names[i], mons[i] >= DPT_MON_METRIC ? "a val_ metric" : dpt_monitor_name(mons[i]));
    return DPT_OK;
}

static dpt_status parse_root(const json_t *root, dpt_config *c) {
    dpt_json_ctx top = {.file = c->file, .path = ""};
    if (!json_is_object(root))
        return dpt_error_set(DPT_ERR_CONFIG,
                             "%s: the top level must be an object with \"model\", "
                             "\"compile\", \"fit\", \"data\", \"checkpoint\", got %s",
                             c->file, dpt_json_type_name(root));
    if (json_object_get(root, "class_name") && json_object_get(root, "config") &&
        !json_object_get(root, "model"))
        return dpt_error_set(DPT_ERR_CONFIG,
                             "%s: class_name: this looks like a Keras model file, "
                             "not a dptrain config; write a config with "
                             "\"model\": \"%s\" and a \"compile\" section",
                             c->file, c->file);
    static const char *const keys[] = {"model", "compile", "fit", "data", "checkpoint", NULL};
    dpt_status st;
    if ((st = check_keys(root, &top, keys)) != DPT_OK)
        return st;
    if ((st = parse_model(root, &top, c)) != DPT_OK)
        return st;
    if ((st = parse_compile(root, &top, c)) != DPT_OK)
        return st;
    if ((st = parse_fit(root, &top, c)) != DPT_OK)
        return st;
    if ((st = parse_data(root, &top, c)) != DPT_OK)
        return st;
    if ((st = check_callbacks(c, &top)) != DPT_OK)
        return st;
    return parse_checkpoint(root, &top, c);
}

dpt_status dpt_config_parse(const char *text, size_t len, const char *file, dpt_config *out) {
    if (!file)
        file = "<config>";
    dpt_config *c = calloc(1, sizeof *c);
    if (!c)
        return dpt_error_set(DPT_ERR_NOMEM, "%s: out of memory", file);
    snprintf(c->file, sizeof c->file, "%s", file);
    json_t *root = NULL;
    dpt_status st = load_json(text, len, c->file, &root);
    if (st == DPT_OK)
        st = parse_root(root, c);
    json_decref(root);
    if (st != DPT_OK) {
        dpt_config_deinit(c);
        free(c);
        return st;
    }
    *out = *c;
    free(c);
    return DPT_OK;
}

void dpt_config_deinit(dpt_config *c) {
    if (!c)
        return;
    free(c->class_weight);
    c->class_weight = NULL;
    c->n_class_weight = 0;
    json_decref(c->layers);
    json_decref(c->model_json);
    c->layers = NULL;
    c->model_json = NULL;
}
