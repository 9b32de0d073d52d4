/* dptrain as a library, from a user's own MPI program: build a config in memory, write a small
 * synthetic dataset, fit 2 epochs on every rank, then load the checkpoint and evaluate and
 * predict (plain and Monte Carlo dropout). Exits 0 when every result checks out.
 *
 *   mpirun -np 2 ./embed [WORK_DIR]        (default WORK_DIR: embed-run)
 *
 * Build against an installed dptrain (tests/cli/test_install.sh does both):
 *   CMake:      find_package(dptrain REQUIRED)
 *               target_link_libraries(embed PRIVATE dptrain::dptrain)
 *   pkg-config: mpicc embed.c $(pkg-config --cflags --libs dptrain) -o embed
 *
 * What the library leaves to the program: MPI_Init / MPI_Finalize, and what to do on failure —
 * here rank 0 prints the one-line message and every rank exits with the status as exit code. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <mpi.h>

#include <dptrain/dptrain.h>

/* The run configuration, as a dptrain config file would hold it: a Keras Sequential model
 * (model.to_json() form), compile, fit and data sections. %s is the dataset path. */
static const char CONFIG_FMT[] =
    "{\n"
    "  \"model\": {\"class_name\": \"Sequential\", \"config\": {\"name\": \"embed\", \"layers\": "
    "[\n"
    "    {\"class_name\": \"Dense\", \"config\": {\"units\": 16, \"activation\": \"relu\",\n"
    "                                         \"batch_input_shape\": [null, 8]}},\n"
    "    {\"class_name\": \"Dropout\", \"config\": {\"rate\": 0.2}},\n"
    "    {\"class_name\": \"Dense\", \"config\": {\"units\": 1, \"activation\": \"sigmoid\"}}]}},\n"
    "  \"compile\": {\"optimizer\": \"adam\", \"loss\": \"binary_crossentropy\",\n"
    "              \"metrics\": [\"accuracy\"]},\n"
    "  \"fit\": {\"epochs\": 2, \"batch_size\": 32, \"validation_split\": 0.25, \"seed\": 7},\n"
    "  \"data\": {\"path\": \"%s\", \"train\": \"train\"}\n"
    "}\n";

#define N_SAMPLES 512
#define N_FEATURES 8

/* Rank 0 prints the failure; every rank returns the same status (they all agreed on it). */
static int fail(const dpt_comm *c, dpt_status st, const char *what) {
    if (c->rank == 0)
        fprintf(stderr, "embed: %s failed: %s: %s\n", what, dpt_status_name(st),
                dpt_error_message());
    return (int)st;
}

/* Collective: every rank learns whether rank 0 sees a non-empty file at path. */
static dpt_status check_file(const dpt_comm *c, const char *path) {
    dpt_status st = DPT_OK;
    struct stat sb;
    if (c->rank == 0 && (stat(path, &sb) != 0 || sb.st_size == 0))
        st = dpt_error_set(DPT_ERR_IO, "%s: missing or empty", path);
    return dpt_comm_agree(c, st);
}

static int run(const dpt_comm *c, const char *dir) {
    char data[1024], ckpt[1024], pred[1024], mc[1024], config[2048];
    snprintf(data, sizeof data, "%s/synth.h5", dir);
    snprintf(ckpt, sizeof ckpt, "%s/last.h5", dir);
    snprintf(pred, sizeof pred, "%s/pred.h5", dir);
    snprintf(mc, sizeof mc, "%s/mc.h5", dir);

    /* 1. data: one rank writes (serial HDF5), all agree on the outcome before reading */
    dpt_status st = DPT_OK;
    if (c->rank == 0) {
        mkdir(dir, 0777); /* may exist; a real failure shows up when writing below */
        st = dpt_data_write_synth(data, N_SAMPLES, N_FEATURES, 11);
    }
    st = dpt_comm_agree(c, st);
    if (st != DPT_OK)
        return fail(c, st, "writing the dataset");

    /* 2. config: parsed from memory; every rank parses the same bytes and fails the same way */
    snprintf(config, sizeof config, CONFIG_FMT, data);
    dpt_config cfg;
    st = dpt_config_parse(config, strlen(config), "embed.c:CONFIG", &cfg);
    st = dpt_comm_agree(c, st);
    if (st != DPT_OK)
        return fail(c, st, "parsing the config");

    /* 3. fit: collective; rank 0 prints the epoch lines and writes dir/history.*, checkpoints */
    dpt_fit_opts opts = dpt_fit_opts_default(); /* the command line's defaults */
    opts.run_dir = dir;
    opts.config_text = config; /* stored in checkpoints: predict reloads it */
    opts.check_replicas = 10;
    dpt_fit_result res;
    st = dpt_fit(c, &cfg, &opts, &res);
    dpt_config_deinit(&cfg);
    if (st != DPT_OK)
        return fail(c, st, "fit");
    if (res.epochs_run != 2 || !isfinite(res.loss) || !(res.accuracy >= 0 && res.accuracy <= 1) ||
        !isfinite(res.val_loss)) {
        if (c->rank == 0)
            fprintf(stderr, "embed: fit: unexpected result: %d epochs, loss %g, accuracy %g\n",
                    res.epochs_run, res.loss, res.accuracy);
        return 1;
    }

    /* 4. evaluate and predict from the checkpoint (its stored config rebuilds the model) */
    dpt_inference inf;
    st = dpt_inference_load(c, ckpt, NULL, data, "train", &inf);
    if (st != DPT_OK)
        return fail(c, st, "loading the checkpoint");
    double loss = NAN, acc = NAN;
    int64_t n = 0;
    st = dpt_evaluate(c, &inf, data, "train", &loss, &acc, &n);
    if (st == DPT_OK)
        st = dpt_predict(c, &inf, data, "train", pred, 0, 0);
    if (st == DPT_OK)
        st = check_file(c, pred);
    if (st == DPT_OK)
        st = dpt_predict(c, &inf, data, "train", mc, 8, 7); /* MC dropout, K = 8 */
    if (st == DPT_OK)
        st = check_file(c, mc);
    dpt_inference_free(&inf);
    if (st != DPT_OK)
        return fail(c, st, "evaluate / predict");
    if (n != N_SAMPLES || !isfinite(loss) || !(acc >= 0 && acc <= 1)) {
        if (c->rank == 0)
            fprintf(stderr, "embed: evaluate: %lld samples, loss %g, accuracy %g\n", (long long)n,
                    loss, acc);
        return 1;
    }
    if (c->rank == 0)
        printf("embed: ok: %d ranks, fit %d epochs (loss %.4f), evaluate %lld samples (loss %.4f, "
               "accuracy %.4f), wrote %s and %s\n",
               c->size, res.epochs_run, res.loss, (long long)n, loss, acc, pred, mc);
    return 0;
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    dpt_comm c;
    dpt_status st = dpt_comm_init(&c, MPI_COMM_WORLD);
    if (st != DPT_OK) {
        fprintf(stderr, "embed: %s\n", dpt_error_message());
        MPI_Abort(MPI_COMM_WORLD, (int)st);
    }
    int code = run(&c, argc > 1 ? argv[1] : "embed-run");
    dpt_comm_deinit(&c);
    MPI_Finalize();
    return code;
}
