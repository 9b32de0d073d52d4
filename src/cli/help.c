/* `dptrain help COMMAND`: per-command help text. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const struct {
    const char *cmd, *text;
} HELP[] = {
    {"fit",
     "dptrain fit CONFIG [--data FILE.h5] [--epochs N] [--batch-size B] [--seed S]\n"
     "                   [--run-dir DIR] [--verbose 0|1|2] [--no-allreduce]\n"
     "\n"
     "Trains the Keras Sequential model of CONFIG (README: config format) on every MPI rank.\n"
     "batch_size is the GLOBAL batch: each global batch is split across the ranks by ownership of\n"
     "the samples, the gradients are summed with one allreduce and divided by the number of\n"
     "samples in the batch, so N ranks compute the update 1 rank would. Dropout masks differ per\n"
     "rank and are a pure function of (seed, rank, step, layer, unit).\n"
     "Rank 0 prints one line per epoch; with --run-dir it writes DIR/history.csv and DIR/final.h5\n"
     "(Keras legacy weights: model.load_weights('final.h5') reads it).\n"},
    {"summary", "dptrain summary CONFIG\n\nPrints layers, output shapes and parameter counts.\n"},
    {"data",
     "dptrain data synth --out FILE.h5 [--samples N] [--features F] [--seed S]\n"
     "dptrain data fashion-mnist --out FILE.h5 [--from DIR]\n"
     "dptrain data csv FILE.csv --label COLUMN --out FILE.h5\n"
     "dptrain data inspect FILE.h5\n"
     "\nWrites or inspects datasets in dptrain's HDF5 format (datasets/FORMAT.md).\n"},
};

int dpt_cli_help(const char *command) {
    for (size_t i = 0; i < sizeof HELP / sizeof HELP[0]; i++) {
        if (!strcmp(HELP[i].cmd, command)) {
            fputs(HELP[i].text, stdout);
            return 0;
        }
    }
    fprintf(stderr, "dptrain: usage error: help: unknown command \"%s\" (fit, summary, data)\n",
            command);
    return DPT_ERR_USAGE;
}
