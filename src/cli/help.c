/* `dptrain help COMMAND`: the complete help of one command — every option, its default, the
 * files it reads and writes, and its exit codes. The short overview is main.c's USAGE; the man
 * page docs/dptrain.1 says the same as this file. tests/cli/test_report.sh checks that every
 * option the parsers accept appears here. */
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
     "options (each overrides the config file):\n"
     "  --data FILE.h5          the HDF5 dataset (overrides data.path)\n"
     "  --epochs N              number of epochs (overrides fit.epochs; default 1)\n"
     "  --batch-size B          GLOBAL batch size, split across the ranks (overrides\n"
     "                          fit.batch_size; default 32)\n"
     "  --seed S                weights, sample order and dropout masks derive from S\n"
     "                          (0 .. 4294967295; overrides fit.seed; default 0)\n"
     "  --run-dir DIR           write the run's files into DIR (created if missing):\n"
     "                            history.csv    one row per epoch: epoch,loss,accuracy,val_loss,\n"
     "                                           val_accuracy,seconds,samples_per_s,\n"
     "                                           learning_rate,ranks (empty = not computed)\n"
     "                            history.jsonl  the same, one JSON object per epoch (null =\n"
     "                                           not computed)\n"
     "                            history.svg    learning curves (loss and accuracy, train and\n"
     "                                           validation), redrawn after every epoch\n"
     "                            last.h5, ckpt-*.h5  checkpoints (weights, optimizer, position)\n"
     "                            final.h5       Keras legacy weights: model.load_weights() reads\n"
     "                                           them\n"
     "                            dptrain.lock   while the run lasts: one job per DIR (exit 9)\n"
     "  --resume                continue exactly from the newest valid checkpoint in DIR (starts\n"
     "                          from the beginning when DIR has none); the history files keep\n"
     "                          the epochs already done. Needs --run-dir\n"},
    {"fit",
     "  --checkpoint-every N|epoch\n"
     "                          steps between checkpoints, or only at the end of each epoch\n"
     "                          (default: checkpoint.every of the config, else epoch). Needs\n"
     "                          --run-dir\n"
     "  --keep K                ckpt-*.h5 files kept besides last.h5 (default: checkpoint.keep\n"
     "                          of the config, else 3). Needs --run-dir\n"
     "  --memory-limit SIZE     bytes of its training shard a rank may hold in memory (suffix\n"
     "                          K, M, G, T = powers of 1024); a larger shard is streamed from\n"
     "                          the file in chunks instead (default: a quarter of the node's\n"
     "                          memory divided by the ranks on the node)\n"
     "  --order global|local    global (default): one shuffled order of all samples, so N ranks\n"
     "                          compute the update 1 rank would; local: each rank shuffles its\n"
     "                          own shard, every step balanced across ranks (faster when ranks\n"
     "                          wait on each other; a streamed shard always uses local)\n"
     "  --init-weights FILE.h5  start from these weights instead of the initialisers: Keras\n"
     "                          legacy .h5, Keras 3 .weights.h5 or a dptrain checkpoint, matched\n"
     "                          layer by layer by position as Keras does, shapes checked\n"},
    {"fit",
     "  --verbose 0|1|2         console output of rank 0 (default 1):\n"
     "                            0  silent (errors still go to stderr)\n"
     "                            1  a live progress bar on a terminal (step, time, samples/s,\n"
     "                               ETA, running loss and accuracy, ~10 redraws per second),\n"
     "                               replaced by the epoch line when the epoch ends; one line\n"
     "                               per epoch when the output is a file or a pipe (Slurm .out\n"
     "                               files get no carriage returns and no colour codes)\n"
     "                            2  one line per epoch always (Keras's verbose=2)\n"
     "                          The epoch line: Epoch 3/20 - 0.12s - loss: 0.6931 - accuracy:\n"
     "                          0.5012 - val_loss: 0.6934 - val_accuracy: 0.4950\n"
     "  --skip-nonfinite        skip a batch whose loss or gradient is NaN or infinite, with a\n"
     "                          warning (default: stop with exit 6, keeping the last good\n"
     "                          checkpoint, as Keras's TerminateOnNaN)\n"
     "  --check-replicas N      compare a checksum of the parameters across ranks every N\n"
     "                          steps; a replica that drifted ends the job with exit 1 naming\n"
     "                          the ranks (default 100; 0 = off)\n"
     "  --watchdog SECONDS      end the whole job (exit 1) when no training step finished for\n"
     "                          SECONDS, e.g. a rank hung in MPI (default 0 = off)\n"
     "  --reduce auto|shm|mpi   how the gradients are summed. shm: the ranks of a node write\n"
     "                          their gradients into one shared-memory window, each sums and\n"
     "                          updates its own 1/k of the weights, and the parts are shared\n"
     "                          back through memory; between nodes MPI_Allreduce sums the parts\n"
     "                          (needs the same number of ranks on every node). mpi: one\n"
     "                          MPI_Allreduce of the whole gradient, every rank updates all the\n"
     "                          weights. auto (default): shm when ranks share a node, else mpi.\n"
     "                          Results agree to float rounding; the startup lines say which\n"
     "  --no-allreduce          benchmark only: skip the gradient exchange (each rank updates\n"
     "                          its own part of the weights; the replicas then diverge and the\n"
     "                          numbers mean nothing)\n"
     "  --profile               after each epoch rank 0 prints the time per step spent in data,\n"
     "                          compute, exchange (with the wait for the slowest rank) and\n"
     "                          update, and the slowest rank's compute and exchange\n"
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

int dpt_cli_help(const char *command) {
    bool found = false;
    for (size_t i = 0; i < sizeof HELP / sizeof HELP[0]; i++) {
        if (!strcmp(HELP[i].cmd, command)) {
            fputs(HELP[i].text, stdout);
            found = true;
        }
    }
    if (found)
        return 0;
    fprintf(stderr,
            "dptrain: usage error: help: unknown command \"%s\" (fit, evaluate, predict, plot, "
            "summary, data)\n",
            command);
    return DPT_ERR_USAGE;
}
