/* `dptrain help COMMAND`: the complete help of one command — every option, its default, the
 * files it reads and writes, and its exit codes. The short overview is main.c's USAGE; the man
 * page docs/dptrain.1 says the same as this file; fit's options come from one table
 * (fit_opts.c), which also makes the man page's (dptrain help --man; tests/cli/test_manpage.sh).
 * tests/cli/test_report.sh checks that every option the parsers accept appears here. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

#define EXIT_CODES                                                                                 \
    "exit codes: 0 success, 1 internal error, 2 usage, 3 config, 4 data, 5 checkpoint,\n"          \
    "            6 numeric (non-finite loss), 7 output I/O, 8 out of memory,\n"                    \
    "            9 run directory busy (another job holds DIR/dptrain.lock),\n"                     \
    "            75 preempted after a checkpoint (resumable with --resume)\n"

/* A command's help is the concatenation of its entries, in order (C11 compilers need only accept
 * string literals of 4095 characters). */
static const struct {
    const char *cmd, *text;
} HELP[] = {
    {"fit",
     "usage: mpirun -np N dptrain fit CONFIG [options]\n"
     "\n"
     "Trains the Keras Sequential model of CONFIG (README: config format) data-parallel on every\n"
     "MPI rank. batch_size is the GLOBAL batch: each global batch is split across the ranks by\n"
     "ownership of the samples, the gradients are summed with one allreduce and divided by the\n"
     "number of samples in the batch, so N ranks compute the update 1 rank would. Dropout masks\n"
     "differ per rank and are a pure function of (seed, rank, step, layer, unit).\n"
     "\n"
     "options (each overrides the config file):\n"},
    {"fit", NULL}, /* the options: fit_opts.c's table */
    {"fit",
     "\n"
     "Before the first step rank 0 prints the model summary, the dataset sizes (train,\n"
     "validation, per rank), the placement (ranks, hosts, OpenBLAS threads per rank) and the run\n"
     "directory. With data.test in the config, the test split is evaluated once at the end.\n"
     "SIGTERM, SIGUSR1 or SIGINT: every rank stops at the next step, a checkpoint is written to\n"
     "DIR/last.h5, exit 75; run the same command with --resume to continue.\n"
     "\n"
     "environment: OPENBLAS_NUM_THREADS (threads per rank; default: the cores the rank is bound\n"
     "to), DPTRAIN_PROGRESS=0 (never draw the bar) or 1 (always).\n"
     "\n" EXIT_CODES},
    {"evaluate",
     "usage: mpirun -np N dptrain evaluate CKPT --data FILE[:GROUP] [--config CONFIG]\n"
     "\n"
     "Prints the loss and (with the accuracy metric) the accuracy of the weights in CKPT over a\n"
     "dataset split, dropout off, the rows sharded across the ranks:\n"
     "  loss: 0.3810 - accuracy: 0.8623 (10000 samples)\n"
     "\n"
     "  CKPT                    a dptrain checkpoint (run-dir/last.h5, ckpt-*.h5: its stored\n"
     "                          config is used) or Keras weights (final.h5, a Keras .weights.h5:\n"
     "                          then --config is required)\n"
     "  --data FILE[:GROUP]     the HDF5 dataset and its group (default: \"test\" when the file\n"
     "                          has one, else \"train\"); required\n"
     "  --config CONFIG         the model and loss to use instead of the checkpoint's own\n"
     "\n" EXIT_CODES},
    {"predict",
     "usage: mpirun -np N dptrain predict CKPT --data FILE[:GROUP] --out PRED.h5\n"
     "                                    [--mc-samples K] [--seed S] [--config CONFIG] [--force]\n"
     "\n"
     "Writes the model's outputs (probabilities after a softmax / sigmoid head) for every sample\n"
     "of a split, in input order, to PRED.h5. The samples are sharded across the ranks; labels\n"
     "are not needed.\n"
     "\n"
     "  CKPT                    a dptrain checkpoint, or Keras weights with --config\n"
     "  --data FILE[:GROUP]     the dataset and its group (default: \"test\" when present, else\n"
     "                          \"train\"); required\n"
     "  --out PRED.h5           the prediction file (written as PRED.h5.tmp, then renamed);\n"
     "                          required. Without --mc-samples: /pred (N, outputs), dropout off.\n"
     "                          Never the dataset, checkpoint or config being read; an existing\n"
     "                          file only when an earlier predict wrote it (else --force)\n"
     "  --mc-samples K          Monte Carlo dropout: K forward passes with dropout ON, the passes\n"
     "                          spread across the ranks (each rank its own masks); writes\n"
     "                          /mean and /std (N, outputs) over the passes and /entropy (N),\n"
     "                          the predictive entropy of the mean (classifiers). 1..1000000\n"
     "  --seed S                seed of the dropout masks of the Monte Carlo passes (default:\n"
     "                          the config's fit.seed); the same S gives the same numbers\n"
     "                          whatever the rank count\n"
     "  --config CONFIG         the model to use instead of the checkpoint's own\n"
     "  --force                 replace an existing --out file that predict did not write\n"
     "\n"
     "Example (docs/EXAMPLES.md): uncertain samples of Fashion-MNIST, by entropy decile.\n"
     "\n" EXIT_CODES},
    {"summary",
     "usage: dptrain summary CONFIG\n"
     "\n"
     "Prints the model of CONFIG as Keras's model.summary() does: layers, output shapes and\n"
     "parameter counts. When the model has no input shape it is taken from data.path.\n"
     "\n" EXIT_CODES},
    {"data",
     "usage: dptrain data synth --out FILE.h5 [--samples N] [--features F] [--seed S]\n"
     "       dptrain data adding --out FILE.h5 [--samples N] [--steps T] [--seed S]\n"
     "       dptrain data fashion-mnist --out FILE.h5 [--from DIR]\n"
     "       dptrain data csv FILE.csv --label COLUMN --out FILE.h5\n"
     "       dptrain data inspect FILE.h5\n"
     "\n"
     "Writes or inspects datasets in dptrain's HDF5 format (datasets/FORMAT.md). Runs on rank 0.\n"
     "\n"
     "  synth                   the tutorial's synthetic data: group /train, x (N, F) float32\n"
     "                          uniform in [0, 1), y (N) int32 random 0/1\n"
     "    --out FILE.h5         the file to write; required\n"
     "    --samples N           N samples (default 1000)\n"
     "    --features F          F features (default 20)\n"
     "    --seed S              random seed (default 0)\n"
     "  adding                  the adding problem, a long-memory test for recurrent models:\n"
     "                          /train (N) and /test (N/10), x (N, T, 2) float32: a uniform\n"
     "                          value and a marker channel with two 1s (one in each half);\n"
     "                          y (N, 1) float32 = the sum of the two marked values (mse)\n"
     "    --out FILE.h5         the file to write; required\n"
     "    --samples N           N training samples (default 10000)\n"
     "    --steps T             T steps per sequence (default 100, at least 2)\n"
     "    --seed S              random seed (default 0)\n"
     "  fashion-mnist           converts the four Fashion-MNIST IDX files (gzip or plain) to\n"
     "                          /train (60000) and /test (10000): x uint8 (N, 28, 28) with\n"
     "                          scale 1/255, y uint8 with class names\n"
     "    --out FILE.h5         the file to write; required\n"
     "    --from DIR            the directory of the IDX files (default\n"
     "                          /usr/share/datasets/fashion-mnist)\n"
     "  csv FILE.csv            a CSV file with a header row, all fields numeric: COLUMN becomes\n"
     "                          y, the other columns x float32 (N, F), group /train\n"
     "    --label COLUMN        the label column's name; required\n"
     "    --out FILE.h5         the file to write; required\n"
     "  inspect FILE.h5         prints the groups, shapes, dtypes and label counts, and checks\n"
     "                          the format\n"
     "\n" EXIT_CODES},
    {"plot",
     "usage: dptrain plot RUN_DIR [--out FILE.svg]\n"
     "\n"
     "Redraws the learning curves of a run directory from RUN_DIR/history.csv: two panels, loss\n"
     "and accuracy per epoch, train (solid) and validation (dashed), as a self-contained SVG\n"
     "that any browser shows. fit already redraws it after every epoch; plot is for a history\n"
     "copied elsewhere, edited, or written by an older dptrain.\n"
     "\n"
     "  RUN_DIR                 the run directory (fit --run-dir)\n"
     "  --out FILE.svg          write the plot here instead of RUN_DIR/history.svg\n"
     "\n"
     "A missing RUN_DIR or history.csv, or a malformed row, is a data error (exit 4) naming the\n"
     "file and the line; an SVG that cannot be written is an I/O error (exit 7).\n"
     "\n" EXIT_CODES},
    {"help", "usage: dptrain help COMMAND      the complete help of one command\n"
             "       dptrain --help            an overview of every command and the exit codes\n"
             "       dptrain --version         the version\n"
             "\n"
             "commands: fit, evaluate, predict, plot, summary, data, help\n"},
};

/* `dptrain help layers`: every Keras class the registry knows (aliases included), in its order */
static int help_layers(void) {
    int n = 0;
    for (const char *const *c = dpt_layer_class_names(); *c; c++)
        n++;
    printf("usage: dptrain help layers\n\nThe %d Keras layer classes dptrain builds (aliases "
           "included); their options,\nand what is refused by name, are in README.md "
           "(\"What you get\"). InputLayer is\nread as the model's input shape.\n\n",
           n);
    for (const char *const *c = dpt_layer_class_names(); *c; c++)
        printf("  %s\n", *c);
    return 0;
}

int dpt_cli_help(const char *command) {
    if (!strcmp(command, "layers"))
        return help_layers();
    if (!strcmp(command, "--man")) { /* the man page's fit options, as docs/dptrain.1 holds them */
        dpt_cli_fit_man(stdout);
        return 0;
    }
    bool found = false;
    for (size_t i = 0; i < sizeof HELP / sizeof HELP[0]; i++) {
        if (!strcmp(HELP[i].cmd, command)) {
            if (HELP[i].text)
                fputs(HELP[i].text, stdout);
            else
                dpt_cli_fit_help(stdout);
            found = true;
        }
    }
    if (found)
        return 0;
    fprintf(stderr,
            "dptrain: usage error: help: unknown command \"%s\" (fit, evaluate, predict, plot, "
            "summary, data, layers)\n",
            command);
    return DPT_ERR_USAGE;
}
