/* predict_dump: the C side of the Keras interop check (tests/interop/run.sh).
 *
 *   predict_dump save OUT.h5 OUT.txt   build the test model (seed 7), write its weights with
 *                                      dpt_weights_save_keras, dump inputs and predictions
 *   predict_dump ckpt DIR OUT.txt      same model, written as a checkpoint (DIR/last.h5)
 *   predict_dump load IN.h5 OUT.txt    load Keras-written weights into the test model, dump
 *
 * The model: input 12 -> Dense 64 relu -> Dropout 0.3 -> Dense 32 relu -> Dense 1 sigmoid
 * (tests/interop/keras_roundtrip.py builds the same one in Keras). OUT.txt: one line per sample,
 * "x0 ... x11 | y" with %.9g, so Python reads back exactly the float32 inputs we used.
 * Leaves to others: Keras itself (keras_roundtrip.py), registering this program (CMake).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "dptrain/dptrain.h"

#define N 16
#define IN 12

static const char *LAYERS =
    "[{\"class_name\":\"Dense\",\"config\":{\"units\":64,\"activation\":\"relu\"}},"
    " {\"class_name\":\"Dropout\",\"config\":{\"rate\":0.3}},"
    " {\"class_name\":\"Dense\",\"config\":{\"units\":32,\"activation\":\"relu\"}},"
    " {\"class_name\":\"Dense\",\"config\":{\"units\":1,\"activation\":\"sigmoid\"}}]";

static int fail(const char *what) {
    fprintf(stderr, "predict_dump: %s: %s\n", what, dpt_error_message());
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 4 ||
        (strcmp(argv[1], "save") && strcmp(argv[1], "load") && strcmp(argv[1], "ckpt"))) {
        fprintf(stderr, "usage: predict_dump save|ckpt|load FILE_OR_DIR OUT.txt\n");
        return 2;
    }
    json_error_t je;
    json_t *layers = json_loads(LAYERS, 0, &je);
    dpt_shape in = {.rank = 1, .dim = {IN}};
    dpt_json_ctx ctx = {.file = "predict_dump", .path = "model.config"};
    dpt_model *m = NULL;
    if (!layers || dpt_model_create(layers, &in, N, 7, &ctx, &m) != DPT_OK)
        return fail("model");
    json_decref(layers);
    /* non-zero biases, so a swapped kernel/bias would show */
    for (int i = 0; i < dpt_model_n_layers(m); i++) {
        dpt_layer *l = dpt_model_layer(m, i);
        int64_t np = dpt_layer_n_params(l);
        int64_t nb = l->out_size; /* Dense: the last out_size parameters are the bias */
        for (int64_t j = np - nb; np > 0 && j < np; j++)
            l->params[j] = 0.05f * sinf((float)j);
    }
    if (!strcmp(argv[1], "save")) {
        if (dpt_weights_save_keras(argv[2], m) != DPT_OK)
            return fail(argv[2]);
    } else if (!strcmp(argv[1], "ckpt")) {
        dpt_ckpt_meta meta = {
            .epoch = 0, .step_in_epoch = 1, .global_step = 1, .seed = 7, .world_size = 1};
        if (dpt_ckpt_write(argv[2], m, NULL, &meta, "{}", 1) != DPT_OK)
            return fail(argv[2]);
    } else if (dpt_weights_load_keras(argv[2], m) != DPT_OK) {
        return fail(argv[2]);
    }
    float x[N * IN];
    for (int i = 0; i < N * IN; i++)
        x[i] = 1.5f * sinf(0.37f * (float)i + 0.1f);
    dpt_pass p = {.training = false};
    const float *y = dpt_model_forward(m, &p, x, N);
    FILE *f = fopen(argv[3], "w");
    if (!f) {
        perror(argv[3]);
        return 1;
    }
    for (int i = 0; i < N; i++) {
        for (int j = 0; j < IN; j++)
            fprintf(f, "%.9g ", (double)x[i * IN + j]);
        fprintf(f, "| %.9g\n", (double)y[i]);
    }
    if (fclose(f) != 0) {
        perror(argv[3]);
        return 1;
    }
    dpt_model_destroy(&m);
    return 0;
}
