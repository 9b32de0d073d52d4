/* Unit tests for src/io/config.c: the tutorial config; one model written in every Keras JSON form
 * (inline and by path) normalising to the same layer list and input shape; real Keras files from
 * the fixtures (skipped when absent); defaults and every option; dpt_read_file; and a table of bad
 * configs, each with its expected one-line message and DPT_ERR_CONFIG.
 * Building the model from the normalised list is tested in test_nn / test_model.
 */
#define _POSIX_C_SOURCE 200809L
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

/* ---- helpers ------------------------------------------------------------------------------- */

static char *slurp(const char *path) {
    char *text = NULL;
    size_t len = 0;
    assert_ok(dpt_read_file(path, DPT_ERR_CONFIG, &text, &len));
    return text;
}

/* printf into a heap string */
static char *fmt(const char *f, ...) DPT_PRINTF(1, 2);
static char *fmt(const char *f, ...) {
    va_list ap;
    va_start(ap, f);
    int n = vsnprintf(NULL, 0, f, ap);
    va_end(ap);
    assert_true(n >= 0);
    char *s = malloc((size_t)n + 1);
    assert_non_null(s);
    va_start(ap, f);
    vsnprintf(s, (size_t)n + 1, f, ap);
    va_end(ap);
    return s;
}

static dpt_status parse(const char *text, const char *file, dpt_config *c) {
    return dpt_config_parse(text, strlen(text), file, c);
}

static const char *layer_class(const dpt_config *c, size_t i) {
    return json_string_value(json_object_get(json_array_get(c->layers, i), "class_name"));
}
static const json_t *layer_config(const dpt_config *c, size_t i) {
    return json_object_get(json_array_get(c->layers, i), "config");
}
static const char *layer_path(const dpt_config *c, size_t i) {
    return json_string_value(json_object_get(json_array_get(c->layers, i), "_path"));
}

/* The tutorial network 20 -> Dense 64 relu -> Dropout 0.5 -> Dense 64 relu -> Dropout 0.5 ->
 * Dense 1 sigmoid, in whatever form it was written. `path0` is the expected "_path" of the first
 * Dense, `path_fmt` the format of the others ("...[%zu]", offset by `first`). */
static void check_tutorial_model(const dpt_config *c, const char *path_fmt, size_t first) {
    static const char *const cls[] = {"Dense", "Dropout", "Dense", "Dropout", "Dense"};
    static const int units[] = {64, 0, 64, 0, 1};
    static const char *const act[] = {"relu", NULL, "relu", NULL, "sigmoid"};
    assert_true(json_is_array(c->layers));
    assert_int_equal(json_array_size(c->layers), 5);
    for (size_t i = 0; i < 5; i++) {
        json_t *e = json_array_get(c->layers, i);
        /* class_name, config, _path only (and _keras_major: 2 for a Keras 2 model) */
        assert_int_equal(json_object_size(e), 3 + (json_object_get(e, "_keras_major") != NULL));
        assert_string_equal(layer_class(c, i), cls[i]);
        const json_t *lc = layer_config(c, i);
        assert_true(json_is_object(lc));
        if (units[i]) {
            assert_int_equal(json_integer_value(json_object_get(lc, "units")), units[i]);
            assert_string_equal(json_string_value(json_object_get(lc, "activation")), act[i]);
        } else {
            assert_true(json_real_value(json_object_get(lc, "rate")) == 0.5);
        }
        char want[64];
        snprintf(want, sizeof want, path_fmt, i + first);
        assert_string_equal(layer_path(c, i), want);
    }
    assert_true(c->has_input_shape);
    assert_int_equal(c->input_shape.rank, 1);
    assert_int_equal(c->input_shape.dim[0], 20);
    assert_non_null(c->model_json);
}

static const char *forms_dir(void) {
    static char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/tests/data/configs/forms", dpt_test_source_dir());
    return dir;
}

/* ---- the tutorial --------------------------------------------------------------------------- */

static void test_tutorial(void **state) {
    (void)state;
    char *path = fmt("%s/examples/tutorial.json", dpt_test_source_dir());
    char *text = slurp(path);
    dpt_config c;
    assert_ok(parse(text, path, &c));
    check_tutorial_model(&c, "model.config.layers[%zu]", 1); /* [0] is the InputLayer */
    assert_string_equal(c.file, path);
    assert_string_equal(c.model_file, "");
    assert_int_equal(c.optim.kind, DPT_OPT_ADAM);
    assert_true(c.optim.learning_rate == 0.001 && c.optim.beta_1 == 0.9 &&
                c.optim.beta_2 == 0.999 && c.optim.epsilon == 1e-7);
    assert_int_equal(c.loss, DPT_LOSS_BINARY_CROSSENTROPY);
    assert_true(c.metric_accuracy);
    assert_int_equal(c.epochs, 20);
    assert_int_equal(c.batch_size, 32);
    assert_true(c.validation_split == 0.2);
    assert_true(c.shuffle);
    assert_int_equal(c.seed, 42);
    assert_string_equal(c.data_path, "datasets/tutorial.h5");
    assert_string_equal(c.train_group, "train");
    assert_string_equal(c.validation_group, "");
    assert_string_equal(c.test_group, "");
    assert_int_equal(c.checkpoint_every, 0);
    assert_int_equal(c.keep, 3);
    /* the model is kept as given, for checkpoints */
    assert_string_equal(json_string_value(json_object_get(c.model_json, "keras_version")), "2.4.0");
    dpt_config_deinit(&c);
    assert_null(c.layers);
    assert_null(c.model_json);
    dpt_config_deinit(&c); /* twice is harmless */
    free(text);
    free(path);
}

/* ---- every Keras form ----------------------------------------------------------------------- */

typedef struct {
    const char *file;     /* under tests/data/configs/forms */
    const char *path_fmt; /* "_path" inside the model object, "%zu" = index */
    size_t first;         /* index of the first Dense in the file's list */
} form_case;

static const form_case forms[] = {
    {"k2.0.5_list.json", "config[%zu]", 0},           /* Keras <= 2.2.2: bare list */
    {"k2.3.1_dict.json", "config.layers[%zu]", 0},    /* dict, no InputLayer */
    {"k2.4.0_input.json", "config.layers[%zu]", 1},   /* dict + InputLayer */
    {"k2.13.1_module.json", "config.layers[%zu]", 1}, /* module/registered_name/build_config */
    {"k3.10.0.json", "config.layers[%zu]", 1},        /* batch_shape, DTypePolicy */
    {"k2.6.0_build_input_shape.json", "config.layers[%zu]",
     0}, /* shape only in build_input_shape */
};

static void test_forms_inline(void **state) {
    (void)state;
    for (size_t k = 0; k < sizeof forms / sizeof forms[0]; k++) {
        char *path = fmt("%s/%s", forms_dir(), forms[k].file);
        char *model = slurp(path);
        char *text =
            fmt("{\"model\": %s, \"compile\": {\"loss\": \"binary_crossentropy\"}}", model);
        char *pfmt = fmt("model.%s", forms[k].path_fmt);
        dpt_config c;
        dpt_status st = parse(text, "inline.json", &c);
        if (st != DPT_OK)
            fail_msg("%s: %s", forms[k].file, dpt_error_message());
        check_tutorial_model(&c, pfmt, forms[k].first);
        assert_string_equal(c.model_file, "");
        dpt_config_deinit(&c);
        free(pfmt);
        free(text);
        free(model);
        free(path);
    }
}

static void test_forms_by_path(void **state) {
    (void)state;
    for (size_t k = 0; k < sizeof forms / sizeof forms[0]; k++) {
        char *path = fmt("%s/%s", forms_dir(), forms[k].file);
        char *text =
            fmt("{\"model\": \"%s\", \"compile\": {\"loss\": \"binary_crossentropy\"}}", path);
        dpt_config c;
        dpt_status st = parse(text, "bypath.json", &c);
        if (st != DPT_OK)
            fail_msg("%s: %s", forms[k].file, dpt_error_message());
        /* messages about the model name the model file, with paths inside it */
        check_tutorial_model(&c, forms[k].path_fmt, forms[k].first);
        assert_string_equal(c.model_file, path);
        assert_string_equal(c.file, "bypath.json");
        dpt_config_deinit(&c);
        free(text);
        free(path);
    }
}

/* A relative model path is relative to the current directory, and errors name that file. */
static void test_model_relative_path(void **state) {
    (void)state;
    char cwd[PATH_MAX];
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(dpt_test_source_dir()), 0);
    dpt_config c;
    assert_ok(parse("{\"model\": \"tests/data/configs/forms/k2.4.0_input.json\", "
                    "\"compile\": {\"loss\": \"binary_crossentropy\"}}",
                    "rel.json", &c));
    assert_string_equal(c.model_file, "tests/data/configs/forms/k2.4.0_input.json");
    check_tutorial_model(&c, "config.layers[%zu]", 1);
    dpt_config_deinit(&c);

    assert_status_msg(parse("{\"model\": \"tests/data/configs/bad_model_class.json\", "
                            "\"compile\": {\"loss\": \"binary_crossentropy\"}}",
                            "rel.json", &c),
                      DPT_ERR_CONFIG,
                      "tests/data/configs/bad_model_class.json: config.layers[2].class_name: "
                      "required");
    assert_status_msg(parse("{\"model\": \"tests/data/configs/bad_model_syntax.json\", "
                            "\"compile\": {\"loss\": \"binary_crossentropy\"}}",
                            "rel.json", &c),
                      DPT_ERR_CONFIG,
                      "tests/data/configs/bad_model_syntax.json:4:3: invalid JSON: ");
    /* a dptrain config given where a Keras model belongs */
    assert_status_msg(parse("{\"model\": \"examples/tutorial.json\", "
                            "\"compile\": {\"loss\": \"binary_crossentropy\"}}",
                            "rel.json", &c),
                      DPT_ERR_CONFIG,
                      "examples/tutorial.json: this is a dptrain config, not a Keras model");
    assert_int_equal(chdir(cwd), 0);
}

static void test_model_path_missing(void **state) {
    (void)state;
    dpt_config c;
    assert_status_msg(parse("{\"model\": \"no/such/model.json\", "
                            "\"compile\": {\"loss\": \"binary_crossentropy\"}}",
                            "x.json", &c),
                      DPT_ERR_CONFIG,
                      "x.json: model: no/such/model.json: cannot open: No such file or directory");
}

static void test_bare_list_and_keras2_shapes(void **state) {
    (void)state;
    static const char *const shapes[] = {"\"batch_input_shape\": [null, 28, 28]",
                                         "\"input_shape\": [28, 28]",
                                         "\"batch_input_shape\": [128, 28, 28]"};
    for (size_t k = 0; k < 3; k++) {
        char *text = fmt("{\"model\": [{\"class_name\": \"Flatten\", \"config\": {%s}}, "
                         "{\"class_name\": \"Dense\", \"config\": {\"units\": 10}}], "
                         "\"compile\": {\"loss\": \"sparse_categorical_crossentropy\"}}",
                         shapes[k]);
        dpt_config c;
        assert_ok(parse(text, "list.json", &c));
        assert_int_equal(json_array_size(c.layers), 2);
        assert_string_equal(layer_path(&c, 1), "model[1]");
        assert_true(c.has_input_shape);
        assert_int_equal(c.input_shape.rank, 2);
        assert_int_equal(c.input_shape.dim[0], 28);
        assert_int_equal(c.input_shape.dim[1], 28);
        assert_int_equal(c.loss, DPT_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY);
        dpt_config_deinit(&c);
        free(text);
    }
    dpt_config c;
    assert_ok(parse("{\"model\": [{\"class_name\": \"Dense\", \"config\": {\"units\": 3, "
                    "\"input_dim\": 7}}], \"compile\": {\"loss\": \"binary_crossentropy\"}}",
                    "dim.json", &c));
    assert_true(c.has_input_shape);
    assert_int_equal(c.input_shape.rank, 1);
    assert_int_equal(c.input_shape.dim[0], 7);
    dpt_config_deinit(&c);
    /* a 4-d sample is the most we take */
    assert_ok(
        parse("{\"model\": {\"class_name\": \"Sequential\", \"config\": {\"layers\": ["
              "{\"class_name\": \"InputLayer\", \"config\": {\"batch_shape\": [null, 2, 3, 4, 5]}},"
              "{\"class_name\": \"Flatten\", \"config\": {}}]}}, "
              "\"compile\": {\"loss\": \"binary_crossentropy\"}}",
              "r4.json", &c));
    assert_int_equal(c.input_shape.rank, 4);
    assert_int_equal(c.input_shape.dim[3], 5);
    assert_string_equal(layer_path(&c, 0), "model.config.layers[1]");
    dpt_config_deinit(&c);
}

static void test_no_input_shape(void **state) {
    (void)state;
    dpt_config c;
    assert_ok(parse("{\"model\": {\"class_name\": \"Sequential\", \"config\": {\"name\": \"s\", "
                    "\"layers\": [{\"class_name\": \"Dense\", \"config\": {\"units\": 1}}]}}, "
                    "\"compile\": {\"loss\": \"mean_squared_error\"}}",
                    "noshape.json", &c));
    assert_false(c.has_input_shape);
    assert_int_equal(json_array_size(c.layers), 1);
    assert_int_equal(c.loss, DPT_LOSS_MSE);
    dpt_config_deinit(&c);
}

/* ---- compile / fit / data / checkpoint ---------------------------------------------------------
 */

#define MODEL                                                                                      \
    "\"model\": [{\"class_name\": \"Dense\", \"config\": {\"units\": 1, \"input_dim\": 4}}]"
#define LOSS "\"loss\": \"binary_crossentropy\""

static void test_defaults(void **state) {
    (void)state;
    dpt_config c;
    assert_ok(parse("{" MODEL ", \"compile\": {" LOSS "}}", "d.json", &c));
    assert_int_equal(c.optim.kind, DPT_OPT_ADAM);
    assert_true(c.optim.learning_rate == 0.001);
    assert_false(c.metric_accuracy);
    assert_int_equal(c.epochs, 1);
    assert_int_equal(c.batch_size, 32);
    assert_true(c.validation_split == 0.0);
    assert_true(c.shuffle);
    assert_int_equal(c.seed, 0);
    assert_string_equal(c.data_path, "");
    assert_string_equal(c.train_group, "train");
    assert_int_equal(c.checkpoint_every, 0);
    assert_int_equal(c.keep, 3);
    dpt_config_deinit(&c);
}

static void test_options(void **state) {
    (void)state;
    dpt_config c;
    /* Keras 2 legacy SGD object with "lr" */
    assert_ok(
        parse("{" MODEL ", \"compile\": {\"optimizer\": {\"class_name\": \"SGD\", \"config\": "
              "{\"lr\": 0.05, \"momentum\": 0.9, \"decay\": 0.0, \"nesterov\": true}}, " LOSS
              ", \"metrics\": [\"acc\"]}, \"fit\": {\"epochs\": 3, \"batch_size\": 2147483648, "
              "\"validation_split\": 0, \"shuffle\": false, \"seed\": 4294967295}, "
              "\"data\": {\"path\": \"d.h5\", \"train\": \"tr\", \"validation\": \"va\", "
              "\"test\": \"te\"}, \"checkpoint\": {\"every\": 100, \"keep\": 0}}",
              "o.json", &c));
    assert_int_equal(c.optim.kind, DPT_OPT_SGD);
    assert_true(c.optim.learning_rate == 0.05 && c.optim.momentum == 0.9 && c.optim.nesterov);
    assert_true(c.metric_accuracy);
    assert_int_equal(c.epochs, 3);
    assert_int_equal(c.batch_size, (int64_t)1 << 31);
    assert_false(c.shuffle);
    assert_int_equal(c.seed, UINT32_MAX);
    assert_string_equal(c.data_path, "d.h5");
    assert_string_equal(c.train_group, "tr");
    assert_string_equal(c.validation_group, "va");
    assert_string_equal(c.test_group, "te");
    assert_int_equal(c.checkpoint_every, 100);
    assert_int_equal(c.keep, 0);
    dpt_config_deinit(&c);

    /* Keras 3 compile_config: Adam and BinaryCrossentropy objects with module keys */
    assert_ok(parse(
        "{" MODEL
        ", \"compile\": {\"optimizer\": {\"module\": \"keras.optimizers\", \"class_name\": "
        "\"Adam\", \"config\": {\"name\": \"adam\", \"learning_rate\": 0.002, \"weight_decay\": "
        "null, "
        "\"clipnorm\": null, \"global_clipnorm\": null, \"clipvalue\": null, \"use_ema\": false, "
        "\"ema_momentum\": 0.99, \"ema_overwrite_frequency\": null, \"loss_scale_factor\": null, "
        "\"gradient_accumulation_steps\": null, \"beta_1\": 0.8, \"beta_2\": 0.99, \"epsilon\": "
        "1e-08, "
        "\"amsgrad\": false}, \"registered_name\": null}, \"loss\": {\"module\": \"keras.losses\", "
        "\"class_name\": \"BinaryCrossentropy\", \"config\": {\"name\": \"binary_crossentropy\", "
        "\"reduction\": \"sum_over_batch_size\", \"from_logits\": false, \"label_smoothing\": 0.0, "
        "\"axis\": -1}, \"registered_name\": null}, \"loss_weights\": null, \"metrics\": "
        "[\"accuracy\"], \"weighted_metrics\": null, \"run_eagerly\": false, "
        "\"steps_per_execution\": 1, \"jit_compile\": false}, \"checkpoint\": {\"every\": "
        "\"epoch\"}}",
        "k3.json", &c));
    assert_int_equal(c.optim.kind, DPT_OPT_ADAM);
    assert_true(c.optim.learning_rate == 0.002 && c.optim.beta_1 == 0.8 && c.optim.beta_2 == 0.99 &&
                c.optim.epsilon == 1e-8);
    assert_int_equal(c.loss, DPT_LOSS_BINARY_CROSSENTROPY);
    assert_true(c.metric_accuracy);
    assert_int_equal(c.checkpoint_every, 0);
    dpt_config_deinit(&c);

    /* names are case-insensitive; no compile options besides the loss gives Adam */
    assert_ok(parse("{" MODEL ", \"compile\": {\"optimizer\": \"SGD\", \"loss\": {\"class_name\": "
                    "\"CategoricalCrossentropy\", \"config\": {}}}}",
                    "s.json", &c));
    assert_int_equal(c.optim.kind, DPT_OPT_SGD);
    assert_true(c.optim.learning_rate == 0.01 && c.optim.momentum == 0.0);
    assert_int_equal(c.loss, DPT_LOSS_CATEGORICAL_CROSSENTROPY);
    dpt_config_deinit(&c);
}

/* ---- real Keras files ----------------------------------------------------------------------- */

static void test_keras_fixtures(void **state) {
    (void)state;
    const char *fx = dpt_test_fixtures_dir();
    if (!fx)
        skip();
    static const struct {
        const char *file;
        size_t n_layers;
        int rank;
        int64_t dim0;
        const char *first, *path0;
    } cases[] = {
        {"k2.0.5_ccfraud_dense_dropout/model.json", 6, 1, 30, "Dense", "config[0]"},
        {"k2.3.1_dl4j_dense_softmax/config.json", 2, 1, 4, "Dense", "config.layers[0]"},
        /* Conv2D is not implemented: building fails later, parsing must not */
        {"k2.4.0_conv_json/model.json", 12, 3, 500, "Conv2D", "config.layers[1]"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        char *path = fmt("%s/%s", fx, cases[k].file);
        char *text =
            fmt("{\"model\": \"%s\", \"compile\": {\"loss\": \"binary_crossentropy\"}}", path);
        dpt_config c;
        dpt_status st = parse(text, "fx.json", &c);
        if (st != DPT_OK)
            fail_msg("%s: %s", cases[k].file, dpt_error_message());
        assert_int_equal(json_array_size(c.layers), cases[k].n_layers);
        assert_true(c.has_input_shape);
        assert_int_equal(c.input_shape.rank, cases[k].rank);
        assert_int_equal(c.input_shape.dim[0], cases[k].dim0);
        assert_string_equal(layer_class(&c, 0), cases[k].first);
        assert_string_equal(layer_path(&c, 0), cases[k].path0);
        if (cases[k].rank == 3) {
            assert_int_equal(c.input_shape.dim[1], 500);
            assert_int_equal(c.input_shape.dim[2], 1);
        }
        dpt_config_deinit(&c);
        free(text);
        free(path);
    }
}

/* ---- dpt_read_file ------------------------------------------------------------------------- */

static void test_read_file(void **state) {
    (void)state;
    const char *dir = dpt_test_tmpdir("config");
    char *path = fmt("%s/f.txt", dir);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    /* larger than the first buffer, to exercise growing it */
    for (int i = 0; i < 100000; i++)
        fputc('a' + i % 26, f);
    fclose(f);
    char *text = NULL;
    size_t len = 0;
    assert_ok(dpt_read_file(path, DPT_ERR_CONFIG, &text, &len));
    assert_int_equal(len, 100000);
    assert_int_equal(text[99999], 'a' + 99999 % 26);
    assert_int_equal(text[len], '\0');
    free(text);

    char *missing = fmt("%s/nope.json", dir);
    assert_status_msg(dpt_read_file(missing, DPT_ERR_DATA, &text, &len), DPT_ERR_DATA, missing);
    assert_null(text);
    assert_non_null(strstr(dpt_error_message(), "No such file or directory"));
    assert_status_msg(dpt_read_file(dir, DPT_ERR_CONFIG, &text, &len), DPT_ERR_CONFIG,
                      "Is a directory");
    assert_null(text);
    /* a FIFO is refused at once, never waited on (no writer will ever come) */
    char *fifo = fmt("%s/fifo.json", dir);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    assert_status_msg(dpt_read_file(fifo, DPT_ERR_CONFIG, &text, &len), DPT_ERR_CONFIG,
                      "cannot read: a FIFO (named pipe), not a regular file");
    assert_null(text);
    assert_status_msg(dpt_read_file("/dev/null", DPT_ERR_CONFIG, &text, &len), DPT_ERR_CONFIG,
                      "/dev/null: cannot read: a character device, not a regular file");
    remove(fifo);
    free(fifo);
    remove(path);
    rmdir(dir);
    free(missing);
    free(path);
}

/* ---- bad configs ---------------------------------------------------------------------------- */

typedef struct {
    const char *text;
    const char *needle; /* expected in the message, which starts with "bad.json" */
} bad_case;

#define ML(layers)                                                                                 \
    "\"model\": {\"class_name\": \"Sequential\", \"config\": {\"layers\": " layers "}}"
#define DENSE "{\"class_name\": \"Dense\", \"config\": {\"units\": 1}}"
#define INPUT(shape)                                                                               \
    "{\"class_name\": \"InputLayer\", \"config\": {\"batch_input_shape\": " shape "}}"
#define COMPILE "\"compile\": {" LOSS "}"
#define OPT(cfg)                                                                                   \
    "{" MODEL ", \"compile\": {" LOSS                                                              \
    ", \"optimizer\": {\"class_name\": \"Adam\", \"config\": " cfg "}}}"

static const bad_case bad[] = {
    /* JSON syntax: file, line and column */
    {"{\n  \"model\": [],\n  \"fit\": {\"epochs\": 3,}\n}",
     "bad.json:3:23: invalid JSON: string or '}' expected near '}'"},
    {"", "bad.json:1:0: invalid JSON"},
    {"{\"fit\": {}, \"fit\": {}}", "invalid JSON: duplicate object key"},
    {"[1, 2]", "bad.json: the top level must be an object with \"model\", \"compile\", \"fit\", "
               "\"data\", \"checkpoint\", got an array"},
    {"{\"class_name\": \"Sequential\", \"config\": []}", "looks like a Keras model file"},
    /* top level */
    {"{" MODEL ", " COMPILE ", \"optimizer\": \"adam\"}",
     "bad.json: optimizer: unknown key (known: model, compile"},
    {"{" COMPILE "}", "bad.json: model: required"},
    {"{\"model\": 3, " COMPILE "}", "bad.json: model: must be a Keras model"},
    {"{\"model\": \"\", " COMPILE "}", "bad.json: model: must not be empty"},
    {"{" MODEL ", " COMPILE ", \"fit\": [1]}", "bad.json: fit: must be an object, got an array"},
    /* compile */
    {"{" MODEL "}", "bad.json: compile.loss: required"},
    {"{" MODEL ", \"compile\": {\"optimizer\": \"adam\"}}", "bad.json: compile.loss: required"},
    {"{" MODEL ", \"compile\": {\"loss\": \"dice\"}}",
     "bad.json: compile.loss: unknown loss \"dice\""},
    {"{" MODEL ", \"compile\": {\"loss\": [\"mse\"]}}",
     "bad.json: compile.loss: must be a loss name"},
    {"{" MODEL ", \"compile\": {\"loss\": {\"class_name\": \"Dice\"}}}",
     "compile.loss.class_name: unknown loss \"Dice\""},
    {"{" MODEL ", \"compile\": {\"loss\": {\"class_name\": \"hinge\"}}}",
     "compile.loss.class_name: unknown loss \"hinge\""},
    {"{" MODEL ", \"compile\": {\"loss\": {\"class_name\": \"MeanSquaredError\", \"config\": "
     "{\"from_logits\": true}}}}",
     "bad.json: compile.loss.config.from_logits: unknown key"},
    {"{" MODEL ", \"compile\": {\"loss\": {\"class_name\": \"BinaryCrossentropy\", \"config\": "
     "{\"label_smoothing\": 1.5}}}}",
     "bad.json: compile.loss.config.label_smoothing: must be in [0, 1], got 1.5"},
    {"{" MODEL ", \"compile\": {\"loss\": {\"class_name\": \"SparseCategoricalCrossentropy\", "
     "\"config\": {\"label_smoothing\": 0.1}}}}",
     "bad.json: compile.loss.config.label_smoothing: unknown key"},
    {"{" MODEL ", \"compile\": {\"loss\": {\"class_name\": \"BinaryCrossentropy\", \"config\": "
     "{\"reduction\": \"sum\"}}}}",
     "compile.loss.config.reduction: not supported (must be \"sum_over_batch_size\"), got "
     "\"sum\""},
    {"{" MODEL ", \"compile\": {\"loss\": {\"class_name\": \"Huber\", \"config\": "
     "{\"reduction\": null}}}}",
     "compile.loss.config.reduction: not supported (must be \"sum_over_batch_size\"), got null"},
    {"{" MODEL ", \"compile\": {\"loss\": {\"class_name\": \"Huber\", \"config\": "
     "{\"delta\": -1}}}}",
     "compile.loss.config.delta: must be in [0, inf], got -1"},
    {"{" MODEL ", \"compile\": {\"loss\": {\"class_name\": \"BinaryFocalCrossentropy\", "
     "\"config\": {\"alpha\": 2}}}}",
     "compile.loss.config.alpha: must be in [0, 1], got 2"},
    {"{" MODEL ", " COMPILE ", \"fit\": {\"class_weight\": [1, 2]}}",
     "bad.json: fit.class_weight: must be an object of class index -> weight"},
    {"{" MODEL ", " COMPILE ", \"fit\": {\"class_weight\": {\"a\": 1}}}",
     "bad.json: fit.class_weight.a: not a class index"},
    {"{" MODEL ", " COMPILE ", \"fit\": {\"class_weight\": {\"-1\": 1}}}",
     "bad.json: fit.class_weight.-1: not a class index"},
    {"{" MODEL ", " COMPILE ", \"fit\": {\"class_weight\": {\"1\": \"x\"}}}",
     "bad.json: fit.class_weight.1: must be a finite number, got a string"},
    {"{" MODEL ", \"compile\": {" LOSS ", \"metrics\": [\"f1_score\"]}}",
     "bad.json: compile.metrics[0]: unsupported metric \"f1_score\" (supported: accuracy"},
    {"{" MODEL ", \"compile\": {" LOSS ", \"metrics\": [{\"class_name\": \"F1Score\"}]}}",
     "bad.json: compile.metrics[0].class_name: unsupported metric \"F1Score\""},
    {"{" MODEL ", \"compile\": {" LOSS ", \"metrics\": [{\"class_name\": \"AUC\", \"config\": "
     "{\"curve\": \"PR_GAIN\"}}]}}",
     "bad.json: compile.metrics[0].config.curve: not supported (must be \"ROC\" or \"PR\"), "
     "got \"PR_GAIN\""},
    {"{" MODEL ", \"compile\": {" LOSS ", \"metrics\": [{\"class_name\": \"AUC\", \"config\": "
     "{\"summation_method\": \"minoring\"}}]}}",
     "compile.metrics[0].config.summation_method: not supported"},
    {"{" MODEL ", \"compile\": {" LOSS ", \"metrics\": [{\"class_name\": \"AUC\", \"config\": "
     "{\"multi_label\": true}}]}}",
     "compile.metrics[0].config.multi_label: not supported (must be false)"},
    {"{" MODEL ", \"compile\": {" LOSS ", \"metrics\": [{\"class_name\": \"Precision\", "
     "\"config\": {\"top_k\": 2}}]}}",
     "compile.metrics[0].config.top_k: not supported yet (must be null)"},
    {"{" MODEL ", \"compile\": {" LOSS ", \"metrics\": [{\"class_name\": \"Recall\", "
     "\"config\": {\"thresholds\": [0.2, 0.4]}}]}}",
     "compile.metrics[0].config.thresholds: not supported (must be null or one number"},
    {"{" MODEL ", \"compile\": {" LOSS ", \"metrics\": [\"auc\", {\"class_name\": \"AUC\"}]}}",
     "compile.metrics[1]: a second metric named \"auc\""},
    {"{" MODEL ", \"compile\": {" LOSS ", \"metrics\": [{\"class_name\": \"AUC\", \"config\": "
     "{\"nme\": \"x\"}}]}}",
     "compile.metrics[0].config.nme: unknown key"},
    {"{" MODEL ", \"compile\": {" LOSS ", \"optimizer\": \"ftrl\"}}",
     "bad.json: compile.optimizer: unknown optimizer \"ftrl\" (supported: adadelta, adagrad, adam, "
     "adamax, adamw, lion, nadam, rmsprop, sgd)"},
    {"{" MODEL ", \"compile\": {" LOSS ", \"optimizer\": {\"class_name\": \"Ftrl\"}}}",
     "bad.json: compile.optimizer.class_name: unknown optimizer \"Ftrl\""},
    {"{" MODEL ", \"compile\": {" LOSS ", \"optimizer\": {\"config\": {}}}}",
     "bad.json: compile.optimizer.class_name: required"},
    {"{" MODEL ", \"compile\": {" LOSS ", \"optimiser\": \"adam\"}}",
     "bad.json: compile.optimiser: unknown key"},
    {"{" MODEL ", \"compile\": {" LOSS ", \"loss_weights\": [1]}}",
     "bad.json: compile.loss_weights: not supported yet"},
    {OPT("{\"amsgrad\": 1}"),
     "bad.json: compile.optimizer.config.amsgrad: must be true or false, got an integer"},
    {OPT("{\"clipnorm\": 0}"),
     "bad.json: compile.optimizer.config.clipnorm: must be a number > 0 or null, got 0"},
    {OPT("{\"clipnorm\": 1.0, \"global_clipnorm\": 1.0}"),
     "compile.optimizer.config.global_clipnorm: only one of clipnorm, clipvalue and "
     "global_clipnorm can be set (clipnorm is set too)"},
    {OPT("{\"clipvalue\": -0.5}"),
     "compile.optimizer.config.clipvalue: must be a number > 0 or null, got -0.5"},
    {OPT("{\"gradient_accumulation_steps\": 1}"),
     "compile.optimizer.config.gradient_accumulation_steps: must be in [2, "},
    {OPT("{\"gradient_accumulation_steps\": 2.5}"),
     "compile.optimizer.config.gradient_accumulation_steps: must be an integer"},
    {OPT("{\"loss_scale_factor\": 128}"),
     "compile.optimizer.config.loss_scale_factor: not supported yet (must be null)"},
    {"{" MODEL ", \"compile\": {" LOSS ", \"optimizer\": {\"class_name\": \"Lion\", \"config\": "
     "{\"beta_1\": 0}}}}",
     "bad.json: compile.optimizer.config.beta_1: must be in (0, 1]"},
    {"{" MODEL ", \"compile\": {" LOSS ", \"optimizer\": {\"class_name\": \"Adagrad\", "
     "\"config\": {\"is_legacy_optimizer\": true}}}}",
     "bad.json: compile.optimizer.config.is_legacy_optimizer: this is Keras 2's OptimizerV2 "
     "Adagrad"},
    {"{" MODEL ", \"compile\": {" LOSS ", \"optimizer\": {\"class_name\": \"Nadam\", "
     "\"config\": {\"learning_rate\": 0.002, \"decay\": 0.0}}}}",
     "bad.json: compile.optimizer.config.decay: this is Keras 2's OptimizerV2 Nadam"},
    {"{" MODEL ", \"compile\": {" LOSS ", \"optimizer\": {\"class_name\": \"Adadelta\", "
     "\"config\": {\"beta_1\": 0.9}}}}",
     "bad.json: compile.optimizer.config.beta_1: unknown key"},
    {"{" MODEL ", \"compile\": {" LOSS ", \"optimizer\": {\"class_name\": \"Nadam\", "
     "\"config\": {\"amsgrad\": false}}}}",
     "bad.json: compile.optimizer.config.amsgrad: unknown key"},
    {OPT("{\"weight_decay\": -0.004}"), "compile.optimizer.config.weight_decay: must be >= 0"},
    {OPT("{\"use_ema\": true}"), "compile.optimizer.config.use_ema: not supported yet"},
    {OPT("{\"decay\": 1e-6}"), "compile.optimizer.config.decay: not supported yet (must be 0)"},
    {OPT("{\"learning_rate\": 0}"),
     "bad.json: compile.optimizer.config.learning_rate: must be > 0, got 0"},
    {OPT("{\"learning_rate\": {\"class_name\": \"ExponentialDecay\"}}"),
     "compile.optimizer.config.learning_rate.config: must be an object, got nothing"},
    {OPT("{\"learning_rate\": {\"class_name\": \"CyclicDecay\", \"config\": {}}}"),
     "compile.optimizer.config.learning_rate.class_name: unknown learning rate schedule"},
    {OPT("{\"learning_rate\": {\"class_name\": \"InverseTimeDecay\", \"config\": "
         "{\"initial_learning_rate\": 0.1, \"decay_rate\": 0.5}}}"),
     "compile.optimizer.config.learning_rate.config.decay_steps: required"},
    {OPT("{\"learning_rate\": {\"class_name\": \"PolynomialDecay\", \"config\": "
         "{\"initial_learning_rate\": 0.1, \"decay_steps\": 10, \"power\": -1}}}"),
     "compile.optimizer.config.learning_rate.config.power: must be"},
    {OPT("{\"learning_rate\": {\"class_name\": \"CosineDecayRestarts\", \"config\": "
         "{\"initial_learning_rate\": 0.1, \"first_decay_steps\": 10, \"t_mul\": 0}}}"),
     "compile.optimizer.config.learning_rate.config.t_mul: must be > 0, got 0"},
    {OPT("{\"learning_rate\": {\"class_name\": \"ExponentialDecay\", \"config\": "
         "{\"initial_learning_rate\": 0.1, \"decay_rate\": 0.9}}}"),
     "compile.optimizer.config.learning_rate.config.decay_steps: required"},
    {OPT("{\"learning_rate\": {\"class_name\": \"PiecewiseConstantDecay\", \"config\": "
         "{\"boundaries\": [10, 20], \"values\": [0.1, 0.01]}}}"),
     "learning_rate.config.values: must have one more entry than boundaries (2), got 2"},
    {OPT("{\"learning_rate\": {\"class_name\": \"CosineDecay\", \"config\": "
         "{\"initial_learning_rate\": 0.1, \"decay_steps\": 10, \"warmup_target\": 0.5}}}"),
     "learning_rate.config.warmup_steps: must be > 0 with a warmup_target"},
    {"{" MODEL ", \"compile\": {" LOSS
     ", \"optimizer\": {\"class_name\": \"RMSprop\", \"config\": {\"beta_1\": 0.9}}}}",
     "compile.optimizer.config.beta_1: unknown key"},
    {"{" MODEL ", \"compile\": {" LOSS
     ", \"optimizer\": {\"class_name\": \"RMSprop\", \"config\": {\"rho\": 1.5}}}}",
     "compile.optimizer.config.rho: must be in [0, 1], got 1.5"},
    {"{" MODEL ", " COMPILE ", \"fit\": {\"callbacks\": [{\"class_name\": \"TensorBoard\"}]}}",
     "bad.json: fit.callbacks[0].class_name: unsupported callback \"TensorBoard\""},
    {"{" MODEL ", " COMPILE ", \"fit\": {\"callbacks\": [{\"class_name\": \"EarlyStopping\", "
     "\"config\": {\"monitor\": \"val_loss\"}}]}}",
     "bad.json: fit.callbacks: EarlyStopping monitors val_loss but there is no validation data"},
    {"{" MODEL ", " COMPILE ", \"fit\": {\"callbacks\": [{\"class_name\": \"EarlyStopping\", "
     "\"config\": {\"monitor\": \"auc\"}}]}}",
     "bad.json: fit.callbacks[0].config.monitor: unknown quantity \"auc\""},
    {"{" MODEL ", " COMPILE ", \"fit\": {\"callbacks\": [{\"class_name\": \"EarlyStopping\", "
     "\"config\": {\"monitor\": \"loss\", \"patience\": 2, \"restore_best\": true}}]}}",
     "bad.json: fit.callbacks[0].config.restore_best: unknown key"},
    {"{" MODEL ", " COMPILE ", \"fit\": {\"callbacks\": [{\"class_name\": "
     "\"ReduceLROnPlateau\", \"config\": {\"monitor\": \"loss\", \"factor\": 1.0}}]}}",
     "bad.json: fit.callbacks[0].config.factor: must be in [0, 1), got 1"},
    {"{" MODEL ", " COMPILE ", \"fit\": {\"callbacks\": [{\"class_name\": "
     "\"ReduceLROnPlateau\", \"config\": {\"monitor\": \"loss\", \"mode\": \"up\"}}]}}",
     "bad.json: fit.callbacks[0].config.mode: must be \"auto\", \"min\" or \"max\""},
    {"{" MODEL ", \"compile\": {" LOSS ", \"optimizer\": {\"class_name\": \"Adam\", \"config\": "
     "{\"learning_rate\": {\"class_name\": \"ExponentialDecay\", \"config\": "
     "{\"initial_learning_rate\": 0.1, \"decay_steps\": 10, \"decay_rate\": 0.5}}}}}, "
     "\"fit\": {\"callbacks\": [{\"class_name\": \"ReduceLROnPlateau\", \"config\": "
     "{\"monitor\": \"loss\"}}]}}",
     "bad.json: fit.callbacks: ReduceLROnPlateau needs a constant learning rate"},
    {OPT("{\"lr\": 0.1, \"learning_rate\": 0.1}"),
     "compile.optimizer.config.lr: give learning_rate or lr, not both"},
    {OPT("{\"beta_1\": 1.0}"), "compile.optimizer.config.beta_1: must be in [0, 1), got 1"},
    {OPT("{\"epsilon\": -1}"), "compile.optimizer.config.epsilon: must be in [0, inf], got -1"},
    {OPT("{\"beta1\": 0.9}"), "bad.json: compile.optimizer.config.beta1: unknown key"},
    {OPT("{\"momentum\": 0.9}"), "compile.optimizer.config.momentum: unknown key"},
    {"{" MODEL ", \"compile\": {" LOSS
     ", \"optimizer\": {\"class_name\": \"SGD\", \"config\": {\"momentum\": 1.5}}}}",
     "compile.optimizer.config.momentum: must be in [0, 1], got 1.5"},
    {"{" MODEL ", \"compile\": {" LOSS ", \"metrics\": [\"accuracy\", \"iou\"]}}",
     "bad.json: compile.metrics[1]: unsupported metric \"iou\""},
    {"{" MODEL ", \"compile\": {" LOSS ", \"metrics\": \"accuracy\"}}",
     "bad.json: compile.metrics: must be a list"},
    /* fit */
    {"{" MODEL ", " COMPILE ", \"fit\": {\"batch_size\": 0}}",
     "bad.json: fit.batch_size: must be in [1, 2147483648], got 0"},
    {"{" MODEL ", " COMPILE ", \"fit\": {\"batch_size\": 2147483649}}",
     "bad.json: fit.batch_size: must be in [1, 2147483648], got 2147483649"},
    {"{" MODEL ", " COMPILE ", \"fit\": {\"batch_size\": \"32\"}}",
     "bad.json: fit.batch_size: must be an integer, got a string"},
    {"{" MODEL ", " COMPILE ", \"fit\": {\"epochs\": -1}}",
     "bad.json: fit.epochs: must be in [1, 2147483647], got -1"},
    {"{" MODEL ", " COMPILE ", \"fit\": {\"epochs\": 2.5}}",
     "bad.json: fit.epochs: must be an integer"},
    {"{" MODEL ", " COMPILE ", \"fit\": {\"validation_split\": 1.0}}",
     "bad.json: fit.validation_split: must be in [0, 1), got 1"},
    {"{" MODEL ", " COMPILE ", \"fit\": {\"seed\": 4294967296}}",
     "bad.json: fit.seed: must be in [0, 4294967295]"},
    {"{" MODEL ", " COMPILE ", \"fit\": {\"shuffle\": \"yes\"}}",
     "bad.json: fit.shuffle: must be true or false"},
    {"{" MODEL ", " COMPILE ", \"fit\": {\"epoch\": 3}}",
     "bad.json: fit.epoch: unknown key (known: epochs, batch_size, validation_split, shuffle, "
     "seed, callbacks, reproducible, micro_batch, class_weight)"},
    /* data, checkpoint */
    {"{" MODEL ", " COMPILE ", \"data\": {\"file\": \"x.h5\"}}",
     "bad.json: data.file: unknown key"},
    {"{" MODEL ", " COMPILE ", \"data\": {\"path\": \"\"}}",
     "bad.json: data.path: must not be empty"},
    {"{" MODEL ", " COMPILE ", \"data\": {\"path\": 3}}", "bad.json: data.path: must be a string"},
    {"{" MODEL ", " COMPILE ", \"checkpoint\": {\"every\": \"step\"}}",
     "bad.json: checkpoint.every: must be a number of steps or \"epoch\""},
    {"{" MODEL ", " COMPILE ", \"checkpoint\": {\"every\": -1}}",
     "bad.json: checkpoint.every: must be in [0,"},
    {"{" MODEL ", " COMPILE ", \"checkpoint\": {\"keep\": -1}}",
     "bad.json: checkpoint.keep: must be in [0,"},
    {"{" MODEL ", " COMPILE ", \"checkpoint\": {\"dir\": \"x\"}}",
     "bad.json: checkpoint.dir: unknown key"},
    /* model */
    {"{\"model\": {\"class_name\": \"Functional\", \"config\": {\"layers\": []}}, " COMPILE "}",
     "bad.json: model.class_name: only Sequential models are supported, got \"Functional\""},
    {"{\"model\": {\"config\": {\"layers\": []}}, " COMPILE "}",
     "bad.json: model.class_name: required"},
    {"{\"model\": {\"class_name\": \"Sequential\", \"config\": {\"name\": \"s\"}}, " COMPILE "}",
     "bad.json: model.config.layers: required"},
    {"{" ML("{\"a\": 1}") ", " COMPILE "}",
     "bad.json: model.config.layers: must be a list of layers, got an object"},
    {"{\"model\": {\"class_name\": \"Sequential\", \"config\": 3}, " COMPILE "}",
     "bad.json: model.config: must be an object"},
    {"{" ML("[" DENSE ", {\"config\": {}}]") ", " COMPILE "}",
     "bad.json: model.config.layers[1].class_name: required"},
    {"{" ML("[" DENSE ", {\"class_name\": 7, \"config\": {}}]") ", " COMPILE "}",
     "bad.json: model.config.layers[1].class_name: must be a string"},
    {"{" ML("[{\"class_name\": \"Dense\"}]") ", " COMPILE "}",
     "bad.json: model.config.layers[0].config: must be an object, got nothing"},
    {"{\"model\": [" DENSE ", 3], " COMPILE "}",
     "bad.json: model[1]: must be a layer object, got an integer"},
    {"{" ML("[]") ", " COMPILE "}", "bad.json: model.config.layers: no layers"},
    {"{" ML("[" INPUT("[null, 4]") "]") ", " COMPILE "}",
     "bad.json: model.config.layers: no layers besides the InputLayer"},
    {"{" ML("[" DENSE ", " INPUT("[null, 4]") "]") ", " COMPILE "}",
     "bad.json: model.config.layers[1]: an InputLayer is only supported as the first layer"},
    {"{" ML("[{\"class_name\": \"InputLayer\", \"config\": {\"name\": \"in\"}}, " DENSE
            "]") ", " COMPILE "}",
     "bad.json: model.config.layers[0].config: InputLayer needs batch_input_shape or batch_shape"},
    {"{" ML("[" INPUT("[null, 0]") ", " DENSE "]") ", " COMPILE "}",
     "bad.json: model.config.layers[0].config.batch_input_shape[1]: must be a positive integer, "
     "got 0"},
    {"{" ML("[" INPUT("[null, 4, -3]") ", " DENSE "]") ", " COMPILE "}",
     "bad.json: model.config.layers[0].config.batch_input_shape[2]: must be a positive integer, "
     "got -3"},
    {"{" ML("[" INPUT("[null, null]") ", " DENSE "]") ", " COMPILE "}",
     "model.config.layers[0].config.batch_input_shape[1]: must be a positive integer, got null"},
    {"{" ML("[" INPUT("[null]") ", " DENSE "]") ", " COMPILE "}",
     "model.config.layers[0].config.batch_input_shape: needs at least one dimension besides the "
     "batch dimension"},
    {"{" ML("[" INPUT("[\"x\", 4]") ", " DENSE "]") ", " COMPILE "}",
     "model.config.layers[0].config.batch_input_shape[0]: the batch dimension must be null"},
    {"{" ML("[" INPUT("[null, 2, 2, 2, 2, 2]") ", " DENSE "]") ", " COMPILE "}",
     "batch_input_shape: 5 dimensions per sample, at most 4 are supported"},
    {"{" ML("[" INPUT("[null, 4294967296, 4294967296]") ", " DENSE "]") ", " COMPILE "}",
     "bad.json: model.config.layers[0].config.batch_input_shape: the number of values per sample "
     "overflows int64"},
    {"{" ML("[" INPUT("7") ", " DENSE "]") ", " COMPILE "}",
     "batch_input_shape: must be a list of dimensions, got an integer"},
    {"{" ML("[" INPUT("[null, 4]") ", {\"class_name\": \"Dense\", \"config\": {\"units\": 1, "
                                   "\"batch_input_shape\": [null, 5]}}]") ", " COMPILE "}",
     "bad.json: model.config.layers[1].config: the declared input shape [null, 5] disagrees with "
     "the InputLayer's [null, 4]"},
    {"{\"model\": [{\"class_name\": \"Dense\", \"config\": {\"units\": 1, \"input_dim\": "
     "0}}], " COMPILE "}",
     "bad.json: model[0].config.input_dim: must be in [1,"},
    {"{\"model\": [{\"class_name\": \"Dense\", \"config\": {\"units\": 1, \"input_shape\": [3, "
     "0]}}], " COMPILE "}",
     "bad.json: model[0].config.input_shape[1]: must be a positive integer, got 0"},
};

static void test_bad_configs(void **state) {
    (void)state;
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        dpt_config c, before;
        memset(&c, 0x5a, sizeof c);
        before = c;
        dpt_error_clear();
        dpt_status st = parse(bad[k].text, "bad.json", &c);
        const char *msg = dpt_error_message();
        if (st != DPT_ERR_CONFIG || !strstr(msg, bad[k].needle) ||
            strncmp(msg, "bad.json", 8) != 0 || strchr(msg, '\n'))
            fail_msg("case %zu: %s\n  expected status %d with \"%s\"\n  got %d: \"%s\"", k,
                     bad[k].text, (int)DPT_ERR_CONFIG, bad[k].needle, (int)st, msg);
        assert_memory_equal(&c, &before, sizeof c); /* *out untouched on failure */
        if (getenv("DPT_SHOW_MESSAGES"))
            printf("%s\n", msg); /* to review the wording */
    }
}

/* RMSprop, AdamW, weight decay, learning-rate schedules (Keras 2 and 3 forms), callbacks */
static void test_optimizers_schedules_callbacks(void **state) {
    (void)state;
    dpt_config c;
    assert_ok(
        parse("{" MODEL ", \"compile\": {" LOSS ", \"optimizer\": \"rmsprop\"}}", "r.json", &c));
    assert_int_equal(c.optim.kind, DPT_OPT_RMSPROP);
    assert_true(c.optim.learning_rate == 0.001 && c.optim.rho == 0.9 && c.optim.momentum == 0 &&
                c.optim.epsilon == 1e-7 && !c.optim.centered && c.optim.weight_decay == 0);
    dpt_config_deinit(&c);
    assert_ok(parse("{" MODEL ", \"compile\": {" LOSS ", \"optimizer\": {\"class_name\": "
                    "\"RMSprop\", \"config\": {\"rho\": 0.8, \"momentum\": 0.5, \"centered\": "
                    "true, \"epsilon\": 1e-6, \"weight_decay\": 0.01}}}}",
                    "r.json", &c));
    assert_true(c.optim.rho == 0.8 && c.optim.momentum == 0.5 && c.optim.centered &&
                c.optim.epsilon == 1e-6 && c.optim.weight_decay == 0.01);
    dpt_config_deinit(&c);
    /* AdamW: Keras 3's default weight_decay 0.004; null keeps it */
    assert_ok(
        parse("{" MODEL ", \"compile\": {" LOSS ", \"optimizer\": {\"module\": "
              "\"keras.optimizers\", \"class_name\": \"AdamW\", \"config\": {\"weight_decay\": "
              "null, \"learning_rate\": {\"module\": \"keras.optimizers.schedules\", "
              "\"class_name\": \"ExponentialDecay\", \"config\": {\"initial_learning_rate\": "
              "0.01, \"decay_steps\": 100, \"decay_rate\": 0.5, \"staircase\": true, \"name\": "
              "\"ExponentialDecay\"}, \"registered_name\": null}}, \"registered_name\": null}}}",
              "w.json", &c));
    assert_int_equal(c.optim.kind, DPT_OPT_ADAMW);
    assert_true(c.optim.weight_decay == 0.004);
    assert_int_equal(c.optim.schedule.kind, DPT_LR_EXPONENTIAL);
    assert_true(c.optim.schedule.staircase && c.optim.schedule.decay_steps == 100);
    assert_true(dpt_lr_schedule_at(&c.optim.schedule, 150) == 0.005);
    dpt_config_deinit(&c);
    assert_ok(
        parse("{" MODEL ", \"compile\": {" LOSS ", \"optimizer\": {\"class_name\": "
              "\"SGD\", \"config\": {\"learning_rate\": {\"class_name\": "
              "\"PiecewiseConstantDecay\", \"config\": {\"boundaries\": [100, 200], "
              "\"values\": [0.1, 0.01, 0.001]}}}}}, \"fit\": {\"validation_split\": 0.1, "
              "\"callbacks\": [{\"class_name\": \"EarlyStopping\", \"config\": {\"patience\": "
              "3, \"restore_best_weights\": true, \"min_delta\": -0.01, \"baseline\": 0.5, "
              "\"start_from_epoch\": 2, \"verbose\": 1}}]}}",
              "p.json", &c));
    assert_int_equal(c.optim.schedule.kind, DPT_LR_PIECEWISE);
    assert_true(c.optim.learning_rate == 0.1);
    const dpt_early_stopping_spec *es = &c.callbacks.early_stopping;
    assert_true(es->enabled && es->monitor == DPT_MON_VAL_LOSS && es->mode == -1 &&
                es->patience == 3 && es->restore_best_weights && es->min_delta == 0.01 &&
                es->has_baseline && es->baseline == 0.5 && es->start_from_epoch == 2);
    assert_false(c.callbacks.reduce_lr.enabled);
    dpt_config_deinit(&c);
    assert_ok(parse("{" MODEL ", " COMPILE ", \"fit\": {\"callbacks\": [{\"class_name\": "
                    "\"ReduceLROnPlateau\", \"config\": {\"monitor\": \"accuracy\", \"epsilon\": "
                    "0.01, \"cooldown\": 2, \"min_lr\": 1e-5, \"patience\": 4, \"factor\": 0.5}}, "
                    "{\"class_name\": \"EarlyStopping\", \"config\": {\"monitor\": \"acc\"}}]}}",
                    "q.json", &c));
    const dpt_reduce_lr_spec *r = &c.callbacks.reduce_lr;
    assert_true(r->enabled && r->monitor == DPT_MON_ACCURACY && r->mode == 1 &&
                r->min_delta == 0.01 && r->cooldown == 2 && r->min_lr == 1e-5 && r->patience == 4 &&
                r->factor == 0.5);
    assert_true(c.callbacks.early_stopping.enabled &&
                c.callbacks.early_stopping.monitor == DPT_MON_ACCURACY &&
                c.callbacks.early_stopping.mode == 1);
    dpt_config_deinit(&c);
}

/* losses with their options and metrics, in the forms Keras 3.15's get_compile_config writes
 * (printed by model.get_compile_config() for the same compile() call) */
static void test_losses_metrics(void **state) {
    (void)state;
    dpt_config c;
    assert_ok(parse(
        "{" MODEL ", \"compile\": {\"loss\": {\"module\": \"keras.losses\", \"class_name\": "
        "\"BinaryFocalCrossentropy\", \"config\": {\"name\": \"binary_focal_crossentropy\", "
        "\"reduction\": \"sum_over_batch_size\", \"from_logits\": true, \"label_smoothing\": 0.1, "
        "\"axis\": -1, \"apply_class_balancing\": true, \"alpha\": 0.25, \"gamma\": 2.0}, "
        "\"registered_name\": null}, \"metrics\": [\"accuracy\", {\"module\": \"keras.metrics\", "
        "\"class_name\": \"AUC\", \"config\": {\"name\": \"prauc\", \"dtype\": \"float32\", "
        "\"num_thresholds\": 200, \"curve\": \"PR\", \"summation_method\": \"interpolation\", "
        "\"multi_label\": false, \"num_labels\": null, \"label_weights\": null, \"from_logits\": "
        "false}, \"registered_name\": null}, {\"module\": \"keras.metrics\", \"class_name\": "
        "\"Precision\", \"config\": {\"name\": \"precision\", \"dtype\": \"float32\", "
        "\"thresholds\": 0.3, \"top_k\": null, \"class_id\": null}, \"registered_name\": null}, "
        "\"mae\", {\"module\": \"keras.metrics\", \"class_name\": \"BinaryAccuracy\", \"config\": "
        "{\"name\": \"binary_accuracy\", \"dtype\": \"float32\", \"threshold\": 0.7}, "
        "\"registered_name\": null}, {\"class_name\": \"AUC\"}, \"binary_crossentropy\"]}}",
        "k3.json", &c));
    assert_int_equal(c.loss, DPT_LOSS_BINARY_FOCAL_CROSSENTROPY);
    assert_true(c.loss_spec.from_logits && c.loss_spec.class_balancing);
    assert_true(c.loss_spec.label_smoothing == 0.1f && c.loss_spec.alpha == 0.25f &&
                c.loss_spec.gamma == 2.0f);
    assert_true(c.metric_accuracy);
    assert_int_equal(c.metrics.n, 7);
    assert_int_equal(c.metrics.m[0].kind, DPT_METRIC_ACCURACY);
    assert_string_equal(c.metrics.m[0].name, "accuracy");
    assert_int_equal(c.metrics.m[1].kind, DPT_METRIC_AUC);
    assert_string_equal(c.metrics.m[1].name, "prauc");
    assert_true(c.metrics.m[1].pr && c.metrics.m[1].num_thresholds == 200);
    assert_int_equal(c.metrics.m[2].kind, DPT_METRIC_PRECISION);
    assert_true(c.metrics.m[2].threshold == 0.3f);
    assert_int_equal(c.metrics.m[3].kind, DPT_METRIC_MAE);
    assert_string_equal(c.metrics.m[3].name, "mae");
    assert_true(c.metrics.m[4].threshold == 0.7f);
    assert_string_equal(c.metrics.m[5].name, "auc"); /* an object without config: its default */
    assert_false(c.metrics.m[5].pr);
    assert_int_equal(c.metrics.m[6].kind, DPT_METRIC_LOSS);
    assert_int_equal(c.metrics.m[6].loss.kind, DPT_LOSS_BINARY_CROSSENTROPY);
    dpt_config_deinit(&c);

    /* Huber with its delta (Keras 3.15's get_config drops it; Keras 2 wrote it), a loss
     * function by name, string aliases */
    assert_ok(parse("{" MODEL ", \"compile\": {\"loss\": {\"class_name\": \"Huber\", \"config\": "
                    "{\"name\": \"huber_loss\", \"reduction\": \"auto\", \"delta\": 2.0}}, "
                    "\"metrics\": [{\"class_name\": \"RootMeanSquaredError\", \"config\": "
                    "{\"name\": \"root_mean_squared_error\", \"dtype\": \"float32\"}}]}}",
                    "h.json", &c));
    assert_int_equal(c.loss, DPT_LOSS_HUBER);
    assert_true(c.loss_spec.delta == 2.0f);
    assert_false(c.metric_accuracy);
    assert_int_equal(c.metrics.m[0].kind, DPT_METRIC_RMSE);
    dpt_config_deinit(&c);
    assert_ok(parse("{" MODEL ", \"compile\": {\"loss\": {\"module\": \"builtins\", "
                    "\"class_name\": \"function\", \"config\": \"mean_absolute_error\", "
                    "\"registered_name\": \"function\"}}}",
                    "f.json", &c));
    assert_int_equal(c.loss, DPT_LOSS_MAE);
    assert_int_equal(c.metrics.n, 0);
    dpt_config_deinit(&c);
    /* callbacks monitoring a metric: its index among the metrics besides accuracy, Keras's
     * direction for mode auto */
    assert_ok(parse("{" MODEL ", \"compile\": {\"loss\": \"mse\", \"metrics\": [\"accuracy\", "
                    "\"mae\", \"auc\"]}, \"fit\": {\"validation_split\": 0.2, \"callbacks\": "
                    "[{\"class_name\": \"EarlyStopping\", \"config\": {\"monitor\": \"val_auc\"}}, "
                    "{\"class_name\": \"ReduceLROnPlateau\", \"config\": {\"monitor\": "
                    "\"mae\"}}]}}",
                    "m.json", &c));
    assert_int_equal(c.callbacks.early_stopping.monitor, DPT_MON_METRIC + 3);
    assert_int_equal(c.callbacks.early_stopping.mode, 1);
    assert_int_equal(c.callbacks.reduce_lr.monitor, DPT_MON_METRIC + 0);
    assert_int_equal(c.callbacks.reduce_lr.mode, -1);
    dpt_config_deinit(&c);
    assert_status_msg(parse("{" MODEL ", \"compile\": {\"loss\": \"mse\", \"metrics\": "
                            "[\"auc\"]}, \"fit\": {\"callbacks\": [{\"class_name\": "
                            "\"EarlyStopping\", \"config\": {\"monitor\": \"val_auc\"}}]}}",
                            "m.json", &c),
                      DPT_ERR_CONFIG,
                      "EarlyStopping monitors a val_ metric but there is no validation");
    assert_status_msg(parse("{" MODEL ", \"compile\": {\"loss\": \"mse\", \"metrics\": "
                            "[\"auc\"]}, \"fit\": {\"callbacks\": [{\"class_name\": "
                            "\"EarlyStopping\", \"config\": {\"monitor\": \"val_prauc\"}}]}}",
                            "m.json", &c),
                      DPT_ERR_CONFIG, "monitor: unknown quantity \"val_prauc\"");

    /* fit.class_weight: classes not listed weigh 1 */
    assert_ok(parse("{" MODEL ", \"compile\": {\"loss\": \"mse\"}, \"fit\": {\"class_weight\": "
                    "{\"0\": 0.5, \"3\": 2}}}",
                    "w.json", &c));
    assert_int_equal(c.n_class_weight, 4);
    assert_true(c.class_weight[0] == 0.5 && c.class_weight[1] == 1 && c.class_weight[2] == 1 &&
                c.class_weight[3] == 2);
    dpt_config_deinit(&c);
    assert_null(c.class_weight);
    static const struct {
        const char *name;
        dpt_loss_kind k;
    } al[] = {{"kld", DPT_LOSS_KL_DIVERGENCE}, {"logcosh", DPT_LOSS_LOG_COSH},
              {"MAPE", DPT_LOSS_MAPE},         {"bce", DPT_LOSS_BINARY_CROSSENTROPY},
              {"huber", DPT_LOSS_HUBER},       {"categorical_hinge", DPT_LOSS_CATEGORICAL_HINGE}};
    for (size_t i = 0; i < sizeof al / sizeof al[0]; i++) {
        char text[512];
        snprintf(text, sizeof text, "{" MODEL ", \"compile\": {\"loss\": \"%s\"}}", al[i].name);
        assert_ok(parse(text, "a.json", &c));
        assert_int_equal(c.loss, al[i].k);
        assert_false(c.loss_spec.from_logits);
        dpt_config_deinit(&c);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tutorial),
        cmocka_unit_test(test_forms_inline),
        cmocka_unit_test(test_forms_by_path),
        cmocka_unit_test(test_model_relative_path),
        cmocka_unit_test(test_model_path_missing),
        cmocka_unit_test(test_bare_list_and_keras2_shapes),
        cmocka_unit_test(test_no_input_shape),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_keras_fixtures),
        cmocka_unit_test(test_read_file),
        cmocka_unit_test(test_bad_configs),
        cmocka_unit_test(test_losses_metrics),
        cmocka_unit_test(test_optimizers_schedules_callbacks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
