/* The Sequential model: builds layers from normalised Keras layer entries through the registry,
 * chains their shapes, owns ONE flat parameter buffer and ONE flat gradient buffer (layers hold
 * views), initialises parameters from the seed (stream = layer index: the same on every rank),
 * and allocates every activation buffer once for max_batch so forward/backward never allocate.
 * It can fold a final sigmoid/softmax into a cross-entropy loss (forward then returns logits).
 * Parsing the config file, I/O and MPI are left to io/, cli/ and dist/.
 */
#include <ctype.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "nn/nn_internal.h"

struct dpt_model {
    int n_layers;
    dpt_layer **layers; /* (n_layers), owned */
    dpt_shape input;
    int64_t in_size, out_size, max_batch;
    int64_t n_params, n_trainable;
    int64_t *segments; /* (n_segments, 2): (offset, length) of the trainable parameters */
    int n_segments;
    bool has_regularizers;
    bool has_constraints;   /* some trainable layer has a weight constraint */
    bool has_activity_regs; /* some layer has an activity regularizer */
    float *params;          /* (n_params) flat, Keras weight order layer by layer */
    float *grads; /* (n_params) flat, same layout: grads_own or the caller's (bind_grads) */
    dpt_grad_ready_fn ready; /* the per-layer "gradients ready" hook, or NULL */
    void *ready_ctx;
    float *grads_own;  /* the model's own gradient buffer */
    bool grads_stale;  /* dpt_model_zero_grads was called and no backward since */
    float *params_own; /* the model's own parameter buffer (params may be bound elsewhere) */
    float *arena;      /* one allocation holding acts[] and scratch[] */
    float **acts;      /* (n_layers): acts[i] is layer i's output (max_batch, out_size_i) */
    float *scratch[2]; /* (max_batch, widest hidden width): ping-pong gradient buffers */
    int first_bwd;     /* lowest layer whose backward matters (has trainable params); n = none */
    const float *x;    /* (B, in_size) input of the last forward, lent by the caller */
    dpt_act head_act;  /* activation folded into the loss, or DPT_ACT_LINEAR */
};

/* Keras's naming.to_snake_case, which gives its default layer names: "Dense" -> "dense",
 * "BatchNormalization" -> "batch_normalization", "Conv2D" -> "conv2d", "MaxPooling2D" ->
 * "max_pooling2d": re.sub("(.)([A-Z][a-z]+)", r"\1_\2"), then re.sub("([a-z])([A-Z])",
 * r"\1_\2"), then lower(). */
static void snake_case(const char *in, char *out, size_t n) {
    char a[256];
    size_t k = 0, len = strlen(in);
    for (size_t i = 0; i < len && k + 2 < sizeof a; i++) {
        unsigned char c = (unsigned char)in[i];
        if (i > 0 && isupper(c) && islower((unsigned char)in[i + 1]) && a[k - 1] != '_')
            a[k++] = '_';
        a[k++] = (char)c;
    }
    a[k] = '\0';
    size_t o = 0;
    for (size_t i = 0; i < k && o + 2 < n; i++) {
        unsigned char c = (unsigned char)a[i];
        if (i > 0 && isupper(c) && islower((unsigned char)a[i - 1]))
            out[o++] = '_';
        out[o++] = (char)tolower(c);
    }
    out[o] = '\0';
}

static bool name_taken(dpt_layer **layers, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (layers[i] && strcmp(layers[i]->name, name) == 0)
            return true;
    return false;
}

/* Layers without a "name" get Keras's defaults: dense, dense_1, ... skipping names in use. */
static void assign_default_names(dpt_layer **layers, int n) {
    for (int i = 0; i < n; i++) {
        if (layers[i]->name[0])
            continue;
        char base[96];
        snake_case(layers[i]->ops->class_name, base, sizeof base);
        for (int k = 0;; k++) {
            char cand[128];
            if (k == 0)
                snprintf(cand, sizeof cand, "%s", base);
            else
                snprintf(cand, sizeof cand, "%s_%d", base, k);
            if (!name_taken(layers, n, cand)) {
                strcpy(layers[i]->name, cand);
                break;
            }
        }
    }
}

static int64_t round16(int64_t n) { return (n + 15) / 16 * 16; }

static dpt_status add_i64(int64_t a, int64_t b, const char *what, int64_t *out) {
    if (__builtin_add_overflow(a, b, out))
        return dpt_error_set(DPT_ERR_NOMEM, "%s: size %lld + %lld overflows", what, (long long)a,
                             (long long)b);
    return DPT_OK;
}

/* The most memory a process here can have: physical memory, or the address-space limit (ulimit
 * -v) when lower. Absurd layer sizes are refused against it BEFORE anything is allocated. */
static int64_t memory_ceiling(void) {
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    int64_t mem = pages > 0 && page > 0 ? (int64_t)pages * page : INT64_MAX;
    struct rlimit rl;
    if (getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        (int64_t)rl.rlim_cur < mem)
        mem = (int64_t)rl.rlim_cur;
    return mem;
}

/* Refuses a layer whose parameters (x4: values, gradients, two optimizer slots) or whose
 * activations for max_batch samples cannot fit, naming it. */
static dpt_status check_layer_size(const dpt_model *m, const dpt_layer *l, const char *file,
                                   const char *path) {
    int64_t ceiling = memory_ceiling();
    double pbytes = (double)dpt_layer_n_params(l) * 4.0 * (double)sizeof(float);
    double abytes = (double)m->max_batch * (double)l->out_size * (double)sizeof(float);
    const char *what = pbytes > abytes ? "its parameters, gradients and optimizer state"
                                       : "its activations for one batch";
    double need = pbytes > abytes ? pbytes : abytes;
    if (need > (double)ceiling)
        return dpt_error_set(DPT_ERR_NOMEM,
                             "%s: %s: this layer needs %.3g GiB for %s, more than the %.3g GiB "
                             "this process may use",
                             file, path, need / 1073741824.0, what, (double)ceiling / 1073741824.0);
    return DPT_OK;
}

static dpt_status build_layers(dpt_model *m, const json_t *layers, const dpt_json_ctx *ctx) {
    dpt_shape cur = m->input;
    for (int i = 0; i < m->n_layers; i++) {
        const json_t *e = json_array_get(layers, (size_t)i);
        char path[256];
        const char *p = json_string_value(json_object_get(e, "_path"));
        if (p)
            snprintf(path, sizeof path, "%s", p);
        else if (snprintf(path, sizeof path, "%s%slayers[%d]", ctx->path, ctx->path[0] ? "." : "",
                          i) >= (int)sizeof path)
            path[sizeof path - 1] = '\0'; /* truncated: still useful in a message */
        if (!json_is_object(e))
            return dpt_error_set(DPT_ERR_CONFIG, "%s: %s: must be a layer object", ctx->file, path);
        const char *cls = json_string_value(json_object_get(e, "class_name"));
        if (!cls)
            return dpt_error_set(DPT_ERR_CONFIG, "%s: %s.class_name: missing or not a string",
                                 ctx->file, path);
        dpt_layer_create_fn create = dpt_layer_lookup(cls);
        if (!create) {
            char known[2048] = "";
            for (const char *const *n = dpt_layer_class_names(); *n; n++) {
                if (known[0])
                    strncat(known, ", ", sizeof known - strlen(known) - 1);
                strncat(known, *n, sizeof known - strlen(known) - 1);
            }
            return dpt_error_set(DPT_ERR_CONFIG,
                                 "%s: %s.class_name: unknown layer \"%s\" (known: %s; dptrain "
                                 "help layers lists them)",
                                 ctx->file, path, cls, known);
        }
        const json_t *cfg = json_object_get(e, "config");
        if (cfg && !json_is_object(cfg))
            return dpt_error_set(DPT_ERR_CONFIG, "%s: %s.config: must be an object", ctx->file,
                                 path);
        dpt_json_ctx sub = {.file = ctx->file, .keras_major = ctx->keras_major};
        const json_t *km = json_object_get(e, "_keras_major"); /* io/config.c's keras_version */
        if (json_is_integer(km))
            sub.keras_major = (int)json_integer_value(km);
        if (snprintf(sub.path, sizeof sub.path, "%s.config", path) >= (int)sizeof sub.path)
            sub.path[sizeof sub.path - 1] = '\0';
        json_t *empty = cfg ? NULL : json_object();
        dpt_status st = dpt_chfirst_wants(cls, cfg) /* transposed at the boundary */
                            ? dpt_chfirst_create(create, cfg, &sub, &cur, &m->layers[i])
                            : create(cfg ? cfg : empty, &sub, &cur, &m->layers[i]);
        json_decref(empty);
        if (st != DPT_OK)
            return st;
        dpt_layer *l = m->layers[i];
        l->index = i;
        if (i > 0 && l->ops->input_ids)
            return dpt_error_set(DPT_ERR_CONFIG,
                                 "%s: %s: %s must be the first layer (its input, integer ids, has "
                                 "no gradient)",
                                 ctx->file, path, l->ops->class_name);
        /* any Keras layer may carry an activity_regularizer: refused where the kind ignored it */
        const json_t *ar = cfg ? json_object_get(cfg, "activity_regularizer") : NULL;
        if (ar && !json_is_null(ar) && !l->has_activity_reg)
            return dpt_error_set(DPT_ERR_CONFIG,
                                 "%s: %s.activity_regularizer: not supported on %s (must be null)",
                                 ctx->file, sub.path, cls);
        st = check_layer_size(m, l, ctx->file, path);
        if (st != DPT_OK)
            return st;
        if (l->name[0] && name_taken(m->layers, i, l->name))
            return dpt_error_set(DPT_ERR_CONFIG, "%s: %s.name: duplicate layer name \"%s\"",
                                 ctx->file, sub.path, l->name);
        cur = l->out_shape;
    }
    assign_default_names(m->layers, m->n_layers);
    return DPT_OK;
}

/* Trainable parameters of l: a prefix of its view (0 for a frozen layer). */
static int64_t layer_n_trainable(const dpt_layer *l) {
    if (!l->trainable)
        return 0;
    return l->ops->n_trainable ? l->ops->n_trainable(l) : dpt_layer_n_params(l);
}

/* Parameter offsets, the two flat buffers, initial values. */
static dpt_status build_params(dpt_model *m, uint32_t seed) {
    int64_t total = 0, trainable = 0;
    for (int i = 0; i < m->n_layers; i++) {
        dpt_layer *l = m->layers[i];
        int64_t n = dpt_layer_n_params(l);
        l->param_offset = total;
        dpt_status st = add_i64(total, n, "model parameters", &total);
        if (st != DPT_OK)
            return st;
        trainable += layer_n_trainable(l);
    }
    m->n_params = total;
    m->n_trainable = trainable;
    int64_t bytes;
    dpt_status st = dpt_mul_i64(total, (int64_t)sizeof(float), "model parameters", &bytes);
    if (st == DPT_OK)
        st = dpt_alloc((size_t)bytes, "model parameters", (void **)&m->params_own);
    m->params = m->params_own;
    if (st == DPT_OK)
        st = dpt_alloc((size_t)bytes, "model gradients", (void **)&m->grads_own);
    if (st != DPT_OK)
        return st;
    m->grads = m->grads_own;
    /* trainable segments: one per layer with trainable parameters, merged when adjacent */
    m->segments = calloc((size_t)m->n_layers * 2 + 2, sizeof *m->segments);
    if (!m->segments)
        return dpt_error_set(DPT_ERR_NOMEM, "model: out of memory");
    for (int i = 0; i < m->n_layers; i++) {
        dpt_layer *l = m->layers[i];
        int64_t nt = layer_n_trainable(l);
        if (nt <= 0)
            continue;
        int k = m->n_segments;
        if (k > 0 && m->segments[2 * k - 2] + m->segments[2 * k - 1] == l->param_offset) {
            m->segments[2 * k - 1] += nt;
        } else {
            m->segments[2 * k] = l->param_offset;
            m->segments[2 * k + 1] = nt;
            m->n_segments++;
        }
    }
    m->first_bwd = m->n_layers;
    for (int i = m->n_layers - 1; i >= 0; i--) {
        dpt_layer *l = m->layers[i];
        int64_t n = dpt_layer_n_params(l);
        l->params = n ? m->params + l->param_offset : NULL;
        l->grads = n ? m->grads + l->param_offset : NULL;
        if (layer_n_trainable(l) > 0)
            m->first_bwd = i;
        if (l->ops->regularize && l->has_regularizer)
            m->has_regularizers = true;
        if (l->ops->constrain && l->has_constraint && l->trainable)
            m->has_constraints = true;
        if (l->has_activity_reg)
            m->has_activity_regs = true;
        if (n) {
            dpt_rng rng;
            dpt_rng_init(&rng, seed, (uint32_t)i);
            if (l->ops->init_params)
                l->ops->init_params(l, &rng);
        }
    }
    return DPT_OK;
}

/* Floats of layer l's workspace for max_batch samples (ops->workspace; 0 without one). */
static int64_t workspace_floats(const dpt_model *m, const dpt_layer *l) {
    return l->ops->workspace ? round16(l->ops->workspace(l, m->max_batch)) : 0;
}

/* One arena: every layer's output for max_batch samples, two scratch gradient buffers, then each
 * layer's workspace (ops->workspace: kept from forward to backward, e.g. an RNN's gate values). */
static dpt_status build_activations(dpt_model *m) {
    int64_t total = 0, widest = 1, n;
    dpt_status st = DPT_OK;
    for (int i = 0; i < m->n_layers && st == DPT_OK; i++) {
        st = dpt_mul_i64(m->max_batch, m->layers[i]->out_size, "activation buffers", &n);
        if (st == DPT_OK)
            st = add_i64(total, round16(n), "activation buffers", &total);
        if (st == DPT_OK)
            st = add_i64(total, workspace_floats(m, m->layers[i]), "layer workspace", &total);
        if (i + 1 < m->n_layers && m->layers[i]->out_size > widest)
            widest = m->layers[i]->out_size;
    }
    int64_t scratch = 0, bytes;
    if (st == DPT_OK)
        st = dpt_mul_i64(m->max_batch, widest, "gradient buffers", &scratch);
    scratch = round16(scratch);
    if (st == DPT_OK)
        st = add_i64(total, 2 * scratch, "activation buffers", &total);
    if (st == DPT_OK)
        st = dpt_mul_i64(total, (int64_t)sizeof(float), "activation buffers", &bytes);
    if (st == DPT_OK)
        st = dpt_alloc((size_t)bytes, "activation buffers", (void **)&m->arena);
    if (st == DPT_OK) {
        m->acts = calloc((size_t)m->n_layers, sizeof *m->acts);
        if (!m->acts)
            st = dpt_error_set(DPT_ERR_NOMEM, "activation buffers: out of memory");
    }
    if (st != DPT_OK)
        return st;
    float *p = m->arena;
    for (int i = 0; i < m->n_layers; i++) {
        m->acts[i] = p;
        p += round16(m->max_batch * m->layers[i]->out_size);
    }
    m->scratch[0] = p;
    m->scratch[1] = p + scratch;
    p += 2 * scratch;
    for (int i = 0; i < m->n_layers; i++) {
        int64_t w = workspace_floats(m, m->layers[i]);
        m->layers[i]->work = w > 0 ? p : NULL;
        p += w;
    }
    return DPT_OK;
}

dpt_status dpt_model_create(const json_t *layers, const dpt_shape *input, int64_t max_batch,
                            uint32_t seed, const dpt_json_ctx *ctx, dpt_model **out) {
    *out = NULL;
    if (!json_is_array(layers))
        return dpt_error_set(DPT_ERR_CONFIG, "%s: %s%slayers: must be an array", ctx->file,
                             ctx->path, ctx->path[0] ? "." : "");
    if (json_array_size(layers) == 0)
        return dpt_error_set(DPT_ERR_CONFIG, "%s: %s%slayers: the model has no layers", ctx->file,
                             ctx->path, ctx->path[0] ? "." : "");
    if (json_array_size(layers) > DPT_MAX_LAYERS)
        return dpt_error_set(DPT_ERR_CONFIG, "%s: too many layers (at most %d)", ctx->file,
                             DPT_MAX_LAYERS);
    if (input->rank < 0 || input->rank > DPT_MAX_RANK)
        return dpt_error_set(DPT_ERR_CONFIG, "%s: input shape: rank %d is not supported (max %d)",
                             ctx->file, input->rank, DPT_MAX_RANK);
    for (int i = 0; i < input->rank; i++)
        if (input->dim[i] < 1) {
            char s[128];
            dpt_shape_format(input, false, s, sizeof s);
            return dpt_error_set(DPT_ERR_CONFIG, "%s: input shape %s: every dimension must be >= 1",
                                 ctx->file, s);
        }
    if (dpt_shape_size(input) < 0 || dpt_shape_size(input) > INT_MAX)
        return dpt_error_set(DPT_ERR_CONFIG, "%s: input shape: too large", ctx->file);
    if (max_batch < 1 || max_batch > INT_MAX)
        return dpt_error_set(DPT_ERR_USAGE, "batch size %lld: must be in [1, %d]",
                             (long long)max_batch, INT_MAX);

    dpt_model *m = calloc(1, sizeof *m);
    if (!m)
        return dpt_error_set(DPT_ERR_NOMEM, "model: out of memory");
    m->n_layers = (int)json_array_size(layers);
    m->input = *input;
    m->in_size = dpt_shape_size(input);
    m->max_batch = max_batch;
    m->head_act = DPT_ACT_LINEAR;
    m->layers = calloc((size_t)m->n_layers, sizeof *m->layers);
    dpt_status st = m->layers ? DPT_OK : dpt_error_set(DPT_ERR_NOMEM, "model: out of memory");
    if (st == DPT_OK)
        st = build_layers(m, layers, ctx);
    if (st == DPT_OK) {
        m->out_size = m->layers[m->n_layers - 1]->out_size;
        st = build_params(m, seed);
    }
    if (st == DPT_OK)
        st = build_activations(m);
    if (st != DPT_OK) {
        dpt_model_destroy(&m);
        return st;
    }
    *out = m;
    return DPT_OK;
}

void dpt_model_destroy(dpt_model **pm) {
    if (!pm || !*pm)
        return;
    dpt_model *m = *pm;
    if (m->layers)
        for (int i = 0; i < m->n_layers; i++)
            dpt_layer_destroy(&m->layers[i]);
    free(m->layers);
    free(m->acts);
    free(m->segments);
    dpt_free(m->arena);
    dpt_free(m->params_own);
    dpt_free(m->grads_own);
    free(m);
    *pm = NULL;
}

static dpt_head *head_of(dpt_layer *l) { return l->ops->head ? l->ops->head(l) : NULL; }

dpt_act dpt_model_set_fused_head(dpt_model *m, dpt_loss_kind loss) {
    dpt_head *h = head_of(m->layers[m->n_layers - 1]);
    m->head_act = DPT_ACT_LINEAR;
    if (!h)
        return m->head_act;
    h->folded = false;
    bool ce = loss == DPT_LOSS_CATEGORICAL_CROSSENTROPY ||
              loss == DPT_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY;
    if ((h->act == DPT_ACT_SIGMOID && loss == DPT_LOSS_BINARY_CROSSENTROPY) ||
        (h->act == DPT_ACT_SOFTMAX && ce)) {
        h->folded = true;
        m->head_act = h->act;
    }
    return m->head_act;
}

dpt_act dpt_model_set_fused_loss(dpt_model *m, const dpt_loss_spec *loss) {
    /* mse folds nothing: it only undoes an earlier fold */
    return dpt_model_set_fused_head(m, loss->from_logits ? DPT_LOSS_MSE : loss->kind);
}

dpt_act dpt_model_head_act(const dpt_model *m) { return m->head_act; }

int64_t dpt_model_input_ids(const dpt_model *m) {
    const dpt_layer *l = m->layers[0];
    return l->ops->input_ids ? l->ops->input_ids(l) : 0;
}

dpt_status dpt_model_check_loss(const dpt_model *m, dpt_loss_kind loss, const char *file) {
    const dpt_layer *last = m->layers[m->n_layers - 1];
    bool ce = loss == DPT_LOSS_CATEGORICAL_CROSSENTROPY ||
              loss == DPT_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY;
    if (!ce || last->out_shape.rank <= 1)
        return DPT_OK;
    char s[128];
    dpt_shape_format(&last->out_shape, true, s, sizeof s);
    return dpt_error_set(DPT_ERR_CONFIG,
                         "%s: compile.loss: %s over an output of shape %s (one distribution per "
                         "position) is not supported; end the model with Flatten, a global "
                         "pooling or a flat Dense",
                         file, dpt_loss_name(loss), s);
}
int dpt_model_n_layers(const dpt_model *m) { return m->n_layers; }
dpt_layer *dpt_model_layer(const dpt_model *m, int i) {
    DPT_ASSERT(i >= 0 && i < m->n_layers);
    return m->layers[i];
}
int64_t dpt_model_n_params(const dpt_model *m) { return m->n_params; }
float *dpt_model_params(dpt_model *m) { return m->params; }
/* a dpt_model_zero_grads that no backward has carried out yet: do it now */
static void settle_grads(dpt_model *m) {
    if (m->grads_stale) {
        memset(m->grads, 0, (size_t)m->n_params * sizeof(float));
        m->grads_stale = false;
    }
}

float *dpt_model_grads(dpt_model *m) {
    settle_grads(m);
    return m->grads;
}

/* points the model (and every layer's view) at `to`, copying the current contents */
static void move_buffer(dpt_model *m, bool grads, float *to, bool copy) {
    float **cur = grads ? &m->grads : &m->params;
    if (to == *cur)
        return;
    if (copy)
        memcpy(to, *cur, (size_t)m->n_params * sizeof(float));
    *cur = to;
    for (int i = 0; i < m->n_layers; i++) {
        dpt_layer *l = m->layers[i];
        if (grads && l->grads)
            l->grads = to + l->param_offset;
        if (!grads && l->params)
            l->params = to + l->param_offset;
    }
}

void dpt_model_bind_grads(dpt_model *m, float *buf, int64_t len, bool copy) {
    DPT_ASSERT(!buf || len >= m->n_params);
    move_buffer(m, true, buf ? buf : m->grads_own, copy);
}

void dpt_model_set_grad_ready(dpt_model *m, dpt_grad_ready_fn fn, void *ctx) {
    m->ready = fn;
    m->ready_ctx = fn ? ctx : NULL;
}

void dpt_model_bind_params(dpt_model *m, float *buf, bool copy) {
    move_buffer(m, false, buf ? buf : m->params_own, copy);
}
const dpt_shape *dpt_model_input_shape(const dpt_model *m) { return &m->input; }
int64_t dpt_model_input_size(const dpt_model *m) { return m->in_size; }
int64_t dpt_model_output_size(const dpt_model *m) { return m->out_size; }
int64_t dpt_model_max_batch(const dpt_model *m) { return m->max_batch; }

void dpt_model_set_reducer(dpt_model *m, dpt_reduce_fn fn, void *ctx) {
    for (int i = 0; i < m->n_layers; i++) {
        m->layers[i]->reduce = fn;
        m->layers[i]->reduce_ctx = fn ? ctx : NULL;
    }
}

bool dpt_model_is_collective(const dpt_model *m) {
    for (int i = 0; i < m->n_layers; i++)
        if (m->layers[i]->ops->collective && m->layers[i]->ops->collective(m->layers[i]))
            return true;
    return false;
}

dpt_status dpt_model_defer_stats(dpt_model *m, int max_passes, const char *file) {
    for (int i = 0; i < m->n_layers; i++) {
        dpt_layer *l = m->layers[i];
        if (!l->ops->defer_stats)
            continue;
        dpt_status st = l->ops->defer_stats(l, max_passes);
        if (st != DPT_OK) {
            char why[512];
            snprintf(why, sizeof why, "%s", dpt_error_message());
            return dpt_error_set(st, "%s: layer %d (%s): %s", file, i, l->name, why);
        }
    }
    return DPT_OK;
}

void dpt_model_finish_stats(dpt_model *m, dpt_log_sum_fn sum, void *ctx) {
    for (int i = 0; i < m->n_layers; i++)
        if (m->layers[i]->ops->finish_stats)
            m->layers[i]->ops->finish_stats(m->layers[i], sum, ctx);
}

int64_t dpt_model_n_trainable(const dpt_model *m) { return m->n_trainable; }

int dpt_model_trainable_segments(const dpt_model *m, const int64_t **seg) {
    *seg = m->segments;
    return m->n_segments;
}

bool dpt_model_has_regularizers(const dpt_model *m) { return m->has_regularizers; }

double dpt_model_regularize(dpt_model *m, float scale) {
    if (scale != 0.0f)
        settle_grads(m); /* it adds to the gradients */
    double pen = 0;
    for (int i = 0; i < m->n_layers; i++) {
        dpt_layer *l = m->layers[i];
        if (l->ops->regularize && l->has_regularizer)
            pen += l->ops->regularize(l, scale);
    }
    return pen;
}

double dpt_model_penalty(dpt_model *m) { return dpt_model_regularize(m, 0.0f); }

bool dpt_model_has_constraints(const dpt_model *m) { return m->has_constraints; }

/* Keras constrains only trainable variables (BaseOptimizer.apply), so frozen layers keep theirs */
void dpt_model_apply_constraints(dpt_model *m) {
    if (!m->has_constraints)
        return;
    for (int i = 0; i < m->n_layers; i++) {
        dpt_layer *l = m->layers[i];
        if (l->ops->constrain && l->has_constraint && l->trainable)
            l->ops->constrain(l);
    }
}

double dpt_model_activity_loss(const dpt_model *m) {
    double s = 0;
    if (!m->has_activity_regs)
        return 0.0;
    for (int i = 0; i < m->n_layers; i++)
        if (m->layers[i]->has_activity_reg)
            s += m->layers[i]->activity_loss;
    return s;
}

/* x (B, in_size) -> (B, out_size) */
const float *dpt_model_forward(dpt_model *m, const dpt_pass *p, const float *x, int64_t B) {
    DPT_ASSERT(B >= 0 && B <= m->max_batch);
    m->x = x;
    const float *cur = x;
    for (int i = 0; i < m->n_layers; i++) {
        dpt_layer *l = m->layers[i];
        l->activity_loss = 0.0; /* a forward on 0 samples leaves it at 0 */
        l->ops->forward(l, p, cur, m->acts[i], B);
        cur = m->acts[i];
    }
    return cur;
}

void dpt_model_zero_grads(dpt_model *m) { m->grads_stale = m->n_params > 0; }

/* dout (B, out_size), overwritten */
void dpt_model_backward(dpt_model *m, const dpt_pass *p, float *dout, int64_t B) {
    DPT_ASSERT(B >= 0 && B <= m->max_batch);
    DPT_ASSERT(m->x != NULL || B == 0);
    float *dy = dout;
    int t = 0;
    /* after dpt_model_zero_grads: layers that can write their gradient do (no zeroing pass); the
     * others' views, and those backward does not reach, are zeroed here */
    bool stale = m->grads_stale;
    for (int i = 0; stale && i < m->n_layers; i++) {
        dpt_layer *l = m->layers[i];
        l->grads_overwrite = i >= m->first_bwd && l->ops->overwrite_ok && l->trainable && B > 0;
        int64_t n = dpt_layer_n_params(l);
        if (n > 0 && !l->grads_overwrite)
            memset(l->grads, 0, (size_t)n * sizeof(float));
    }
    m->grads_stale = false;
    for (int i = m->n_layers - 1; i >= m->first_bwd; i--) {
        dpt_layer *l = m->layers[i];
        const float *x = i > 0 ? m->acts[i - 1] : m->x;
        float *dx = i > m->first_bwd ? m->scratch[t] : NULL;
        if (!stale)
            l->grads_overwrite = false;
        l->ops->backward(l, p, x, m->acts[i], dy, dx, B);
        if (m->ready && l->grads)
            m->ready(m->ready_ctx, l->param_offset, dpt_layer_n_params(l));
        dy = dx;
        t ^= 1;
    }
}

/* ---- summary -------------------------------------------------------------------------------- */
typedef struct {
    char *buf;
    size_t n, len; /* len counts everything, even what did not fit (like snprintf) */
} appender;

static void app(appender *a, const char *fmt, ...) DPT_PRINTF(2, 3);
static void app(appender *a, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *dst = a->len < a->n ? a->buf + a->len : NULL;
    size_t room = a->len < a->n ? a->n - a->len : 0;
    int w = vsnprintf(dst, room, fmt, ap);
    va_end(ap);
    if (w > 0)
        a->len += (size_t)w;
}

/* 5569 -> "5,569" */
static void thousands(int64_t v, char *buf, size_t n) {
    char digits[32];
    snprintf(digits, sizeof digits, "%lld", (long long)(v < 0 ? -v : v));
    size_t nd = strlen(digits), k = 0;
    if (v < 0 && k + 1 < n)
        buf[k++] = '-';
    for (size_t i = 0; i < nd && k + 1 < n; i++) {
        if (i > 0 && (nd - i) % 3 == 0 && k + 1 < n)
            buf[k++] = ',';
        if (k + 1 < n)
            buf[k++] = digits[i];
    }
    buf[k] = '\0';
}

int dpt_model_summary(const dpt_model *m, char *buf, size_t n) {
    appender a = {.buf = buf, .n = n, .len = 0};
    if (n > 0)
        buf[0] = '\0';
    static const char *const rule =
        "_________________________________________________________________";
    static const char *const dbl =
        "=================================================================";
    app(&a, "%s\n %-28s%-26s%s\n%s\n", rule, "Layer (type)", "Output Shape", "Param #", dbl);
    for (int i = 0; i < m->n_layers; i++) {
        const dpt_layer *l = m->layers[i];
        char col[300], shape[160], np[32];
        snprintf(col, sizeof col, "%s (%s)", l->name, l->ops->class_name);
        dpt_shape_format(&l->out_shape, true, shape, sizeof shape);
        thousands(dpt_layer_n_params(l), np, sizeof np);
        app(&a, " %-27s %-25s %s\n", col, shape, np);
    }
    char t[32], tr[32], nt[32];
    thousands(m->n_params, t, sizeof t);
    thousands(m->n_trainable, tr, sizeof tr);
    thousands(m->n_params - m->n_trainable, nt, sizeof nt);
    app(&a, "%s\nTotal params: %s\nTrainable params: %s\nNon-trainable params: %s\n%s\n", dbl, t,
        tr, nt, rule);
    return a.len > INT_MAX ? INT_MAX : (int)a.len;
}
