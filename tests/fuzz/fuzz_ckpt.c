/* libFuzzer target: the checkpoint and Keras-weights readers on arbitrary bytes, into one small
 * fixed model (the one in tests/fuzz/model.json: Dense 4 -> 3 relu, Dropout, Dense 2 softmax,
 * input (4,), Adam). The bytes are written to a file; dpt_ckpt_read, dpt_ckpt_read_config and
 * dpt_weights_load_keras must return DPT_OK or DPT_ERR_CHECKPOINT (DPT_ERR_NOMEM for an
 * allocation failure) with a message naming the file, and never crash. The seed corpus holds
 * checkpoints and weights of that model written by `dptrain fit` (tests/fuzz/make_corpus.sh).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "dptrain/checkpoint.h"
#include "dptrain/core.h"
#include "dptrain/nn.h"
#include "dptrain/optim.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *LAYERS =
    "[{\"class_name\": \"Dense\", \"config\": {\"name\": \"h\", \"units\": 3, \"activation\": "
    "\"relu\"}},"
    " {\"class_name\": \"Dropout\", \"config\": {\"name\": \"drop\", \"rate\": 0.25}},"
    " {\"class_name\": \"Dense\", \"config\": {\"name\": \"out\", \"units\": 2, \"activation\": "
    "\"softmax\"}}]";

static json_t *g_layers;
static dpt_model *g_model;
static dpt_optim *g_optim;
static char g_path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    json_error_t je;
    json_t *layers = json_loads(LAYERS, 0, &je);
    dpt_shape in = {.rank = 1, .dim = {4}};
    dpt_json_ctx ctx = {.file = "model.json", .path = "model.config"};
    dpt_optim_spec spec = dpt_optim_defaults(DPT_OPT_ADAM);
    if (!layers || dpt_model_create(layers, &in, 4, 1, &ctx, &g_model) != DPT_OK ||
        dpt_optim_create(&spec, dpt_model_n_params(g_model), &g_optim) != DPT_OK) {
        fprintf(stderr, "fuzz_ckpt: cannot build the model: %s\n", dpt_error_message());
        abort();
    }
    g_layers = layers; /* kept for the life of the process: the model may refer to it */
    snprintf(g_path, sizeof g_path, "/tmp/dpt-fuzz-ckpt-%d.h5", (int)getpid());
    return 0;
}

static void check(dpt_status st, const char *what) {
    if (st == DPT_OK)
        return;
    if (st != DPT_ERR_CHECKPOINT && st != DPT_ERR_NOMEM) {
        fprintf(stderr, "%s: unexpected status %d: %s\n", what, (int)st, dpt_error_message());
        abort();
    }
    if (!strstr(dpt_error_message(), g_path)) {
        fprintf(stderr, "%s: message does not name the file: %s\n", what, dpt_error_message());
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    FILE *f = fopen(g_path, "wb");
    if (!f)
        return 0;
    if (size && fwrite(data, 1, size, f) != size) {
        fclose(f);
        return 0;
    }
    fclose(f);
    dpt_ckpt_meta meta;
    dpt_error_clear();
    check(dpt_ckpt_read(g_path, g_model, g_optim, &meta), "dpt_ckpt_read");
    char *text = NULL;
    dpt_error_clear();
    check(dpt_ckpt_read_config(g_path, &text), "dpt_ckpt_read_config");
    free(text);
    dpt_error_clear();
    check(dpt_weights_load_keras(g_path, g_model), "dpt_weights_load_keras");
    return 0;
}
