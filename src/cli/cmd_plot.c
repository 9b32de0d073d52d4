/* `dptrain plot RUN_DIR`: redraws the learning curves of a run directory. Local (rank 0). */
#include "cli.h"

dpt_status dpt_cli_plot(int argc, char **argv) {
    (void)argv;
    if (argc < 1) return dpt_error_set(DPT_ERR_USAGE, "plot: missing RUN_DIR");
    return dpt_error_set(DPT_ERR_USAGE, "plot: not available in this build yet");
}
