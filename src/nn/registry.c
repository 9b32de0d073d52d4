/* The layer registry (Keras class_name -> constructor) and what every layer kind shares: the
 * base config keys (name, trainable, dtype), shape helpers, destroy. The kinds themselves live
 * one per file (dense.c, dropout.c, activation.c, flatten.c, reshape.c, conv2d.c, pool.c,
 * batchnorm.c, noise.c, act_layers.c, layernorm.c, rescaling.c, conv1d.c, pool1d.c, embedding.c,
 * seq_shape.c, pad2d.c, upsample2d.c, dwconv.c, actreg.c); the model (model.c) drives them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn_internal.h"

static const struct {
    const char *class_name;
    dpt_layer_create_fn create;
} registry[] = {
    {"Dense", dpt_dense_create},
    {"Dropout", dpt_dropout_create},
    {"Activation", dpt_activation_create},
    {"Flatten", dpt_flatten_create},
    {"Reshape", dpt_reshape_create},
    {"Conv2D", dpt_conv2d_create},
    {"Convolution2D", dpt_conv2d_create}, /* Keras 2 alias */
    {"MaxPooling2D", dpt_maxpool2d_create},
    {"MaxPool2D", dpt_maxpool2d_create},
    {"AveragePooling2D", dpt_avgpool2d_create},
    {"AvgPool2D", dpt_avgpool2d_create},
    {"GlobalAveragePooling2D", dpt_gap2d_create},
    {"GlobalAvgPool2D", dpt_gap2d_create},
    {"BatchNormalization", dpt_batchnorm_create},
    {"SpatialDropout1D", dpt_spatial_dropout1d_create},
    {"SpatialDropout2D", dpt_spatial_dropout2d_create},
    {"GaussianDropout", dpt_gaussian_dropout_create},
    {"AlphaDropout", dpt_alpha_dropout_create},
    {"GaussianNoise", dpt_gaussian_noise_create},
    {"ReLU", dpt_relu_create},
    {"LeakyReLU", dpt_leaky_relu_create},
    {"PReLU", dpt_prelu_create},
    {"ELU", dpt_elu_create},
    {"Softmax", dpt_softmax_create},
    {"LayerNormalization", dpt_layernorm_create},
    {"Rescaling", dpt_rescaling_create},
    {"Normalization", dpt_normalization_create},
    {"Conv1D", dpt_conv1d_create},
    {"Convolution1D", dpt_conv1d_create}, /* Keras 2 alias */
    {"MaxPooling1D", dpt_maxpool1d_create},
    {"MaxPool1D", dpt_maxpool1d_create},
    {"AveragePooling1D", dpt_avgpool1d_create},
    {"AvgPool1D", dpt_avgpool1d_create},
    {"GlobalAveragePooling1D", dpt_gap1d_create},
    {"GlobalAvgPool1D", dpt_gap1d_create},
    {"GlobalMaxPooling1D", dpt_gmp1d_create},
    {"GlobalMaxPool1D", dpt_gmp1d_create},
    {"GlobalMaxPooling2D", dpt_gmp2d_create},
    {"GlobalMaxPool2D", dpt_gmp2d_create},
    {"Embedding", dpt_embedding_create},
    {"ZeroPadding1D", dpt_zeropad1d_create},
    {"Cropping1D", dpt_crop1d_create},
    {"UpSampling1D", dpt_upsample1d_create},
    {"RepeatVector", dpt_repeat_vector_create},
    {"ZeroPadding2D", dpt_zero_padding2d_create},
    {"Cropping2D", dpt_cropping2d_create},
    {"UpSampling2D", dpt_upsampling2d_create},
    {"DepthwiseConv2D", dpt_depthwise_conv2d_create},
    {"SeparableConv2D", dpt_separable_conv2d_create},
    {"SeparableConvolution2D", dpt_separable_conv2d_create}, /* Keras 2 alias */
    {"ActivityRegularization", dpt_activity_regularization_create},
    {"SimpleRNN", dpt_simple_rnn_create},
    {"LSTM", dpt_lstm_create},
    {"GRU", dpt_gru_create},
    {"Bidirectional", dpt_bidirectional_create},
};
#define N_REGISTRY (sizeof registry / sizeof registry[0])

dpt_layer_create_fn dpt_layer_lookup(const char *class_name) {
    if (!class_name)
        return NULL;
    for (size_t i = 0; i < N_REGISTRY; i++)
        if (strcmp(class_name, registry[i].class_name) == 0)
            return registry[i].create;
    return NULL;
}

const char *const *dpt_layer_class_names(void) {
    static const char *names[N_REGISTRY + 1];
    if (!names[0])
        for (size_t i = 0; i < N_REGISTRY; i++)
            names[i] = registry[i].class_name;
    return names;
}

void dpt_layer_destroy(dpt_layer **l) {
    if (!l || !*l)
        return;
    if ((*l)->ops && (*l)->ops->destroy)
        (*l)->ops->destroy(*l);
    free(*l);
    *l = NULL;
}

void dpt_shape_format(const dpt_shape *s, bool with_batch, char *buf, size_t n) {
    size_t k = 0;
    int w = snprintf(buf, n, "(%s", with_batch ? "None" : "");
    k = w > 0 ? (size_t)w : 0;
    for (int i = 0; i < s->rank && k < n; i++) {
        w = snprintf(buf + k, n - k, "%s%lld", (i > 0 || with_batch) ? ", " : "",
                     (long long)s->dim[i]);
        k += w > 0 ? (size_t)w : 0;
    }
    if (k < n)
        snprintf(buf + k, n - k, "%s)", (!with_batch && s->rank == 1) ? "," : "");
}

/* dtype: "float32", or Keras 3's {"class_name": "DTypePolicy", "config": {"name": "float32"}} */
static dpt_status check_dtype(const json_t *config, const dpt_json_ctx *ctx) {
    const json_t *v = json_object_get(config, "dtype");
    if (!v || json_is_null(v))
        return DPT_OK;
    const char *name = NULL;
    if (json_is_string(v)) {
        name = json_string_value(v);
    } else if (json_is_object(v)) {
        const json_t *c = json_object_get(v, "config");
        name = json_string_value(json_object_get(c, "name"));
    }
    if (!name)
        return dpt_error_set(DPT_ERR_CONFIG, "%s: %s.dtype: must be \"float32\" or a DTypePolicy",
                             ctx->file, ctx->path);
    if (strcmp(name, "float32") != 0)
        return dpt_error_set(DPT_ERR_CONFIG, "%s: %s.dtype: only float32 is supported, got \"%s\"",
                             ctx->file, ctx->path, name);
    return DPT_OK;
}

dpt_status dpt_layer_base_init(dpt_layer *l, const dpt_layer_ops *ops, const json_t *config,
                               const dpt_json_ctx *ctx, const dpt_shape *in) {
    l->ops = ops;
    l->name[0] = '\0';
    l->params = l->grads = NULL;
    l->param_offset = 0;
    l->index = 0;
    l->has_regularizer = false;
    l->has_constraint = false;
    l->has_activity_reg = false;
    l->activity_loss = 0.0;
    l->reduce = NULL;
    l->reduce_ctx = NULL;
    l->work = NULL;
    const char *name = NULL;
    dpt_status st = dpt_json_get_str(config, "name", ctx, "", &name);
    if (st != DPT_OK)
        return st;
    if (strlen(name) >= sizeof l->name)
        return dpt_error_set(DPT_ERR_CONFIG, "%s: %s.name: longer than %zu characters", ctx->file,
                             ctx->path, sizeof l->name - 1);
    if (strchr(name, '/'))
        return dpt_error_set(DPT_ERR_CONFIG, "%s: %s.name: must not contain '/', got \"%s\"",
                             ctx->file, ctx->path, name);
    /* each layer is a group named after it in weight files and checkpoints: refuse up front the
     * names HDF5 cannot create (".") or that the files use themselves */
    if (!strcmp(name, ".") || !strcmp(name, "dptrain") || !strcmp(name, "top_level_model_weights"))
        return dpt_error_set(DPT_ERR_CONFIG,
                             "%s: %s.name: \"%s\" cannot name a layer's group in a weights file "
                             "or checkpoint%s",
                             ctx->file, ctx->path, name,
                             name[0] == '.' ? " (HDF5's name of the current group)"
                                            : " (a name the file uses itself)");
    strcpy(l->name, name);
    st = dpt_json_get_bool(config, "trainable", ctx, true, &l->trainable);
    if (st != DPT_OK)
        return st;
    st = check_dtype(config, ctx);
    if (st != DPT_OK)
        return st;
    if (in->rank < 0 || in->rank > DPT_MAX_RANK)
        return dpt_error_set(DPT_ERR_CONFIG, "%s: %s: input rank %d is not supported", ctx->file,
                             ctx->path, in->rank);
    l->in_shape = *in;
    l->out_shape = *in;
    l->in_size = l->out_size = dpt_shape_size(in);
    if (l->in_size < 0)
        return dpt_error_set(DPT_ERR_CONFIG, "%s: %s: input shape is too large", ctx->file,
                             ctx->path);
    return DPT_OK;
}

json_t *dpt_layer_base_json(const dpt_layer *l) {
    return json_pack("{s:s, s:b, s:s}", "name", l->name, "trainable", l->trainable, "dtype",
                     "float32");
}
