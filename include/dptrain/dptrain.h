/* dptrain — public API: everything a C program needs to build a model, load data and train it
 * data-parallel from its own MPI program. See README.md and docs/DESIGN.md.
 *
 * Using dptrain from your own MPI program
 * ---------------------------------------
 * Include this one header; link the library (CMake: find_package(dptrain) and the target
 * dptrain::dptrain; pkg-config: `mpicc app.c $(pkg-config --cflags --libs dptrain)`).
 * examples/embed.c is a complete program, built and run by tests/cli/test_install.sh.
 *
 *   MPI_Init(&argc, &argv);                      // yours: dptrain never initialises MPI
 *   dpt_comm c;
 *   dpt_comm_init(&c, MPI_COMM_WORLD);           // collective; duplicates the communicator
 *                                                // (any sub-communicator works the same way)
 *   dpt_config cfg;                              // a config: from a file's bytes read on rank 0
 *   dpt_config_parse(text, len, "name", &cfg);   // and broadcast, or JSON text you build in
 *                                                // memory; every rank parses the same bytes
 *   dpt_fit_opts o = {.run_dir = "runs/a", .verbose = 1, .out = stdout,
 *                     .checkpoint_every = -1, .keep = -1, .config_text = text};
 *   dpt_fit(&c, &cfg, &o, &result);              // collective: trains, writes runs/a/...
 *   dpt_config_deinit(&cfg);
 *
 *   dpt_inference inf;                           // later, or in another program:
 *   dpt_inference_load(&c, "runs/a/last.h5", NULL, data, "test", &inf);   // collective
 *   dpt_evaluate(&c, &inf, data, "test", &loss, &accuracy, &n);          // collective
 *   dpt_predict(&c, &inf, data, "test", "pred.h5", mc_samples, seed);    // collective
 *   dpt_inference_free(&inf);
 *
 *   dpt_comm_deinit(&c);                         // collective
 *   MPI_Finalize();
 *
 * Rules the whole API follows:
 * - Every fallible function returns a dpt_status (DPT_OK = 0; the values are the command's exit
 *   codes) and records one line of context, dpt_error_message(). Nothing calls exit().
 * - Each function's comment says whether it is collective (every rank of the dpt_comm calls it,
 *   in the same order, with the same arguments) or local. Collective functions return the same
 *   status on every rank, so `if (st != DPT_OK)` branches agree; after a local failure that
 *   others must learn of, call dpt_comm_agree(&c, st) (collective) before going on.
 * - Inside a training step an unrecoverable error (an MPI failure, a bad label) ends the whole job
 *   with MPI_Abort: a rank that returned while others wait in an allreduce would hang the job.
 * - Rank 0 prints progress to dpt_fit_opts.out (verbose 0 silences it) and writes the run
 *   directory; the other ranks print nothing.
 * - Objects: dpt_x_create(..., &p) / dpt_x_destroy(&p) (NULL-safe, sets p = NULL); plain structs:
 *   init / deinit. Nothing frees what it was lent; a header says when ownership moves.
 * - Building a model and running it without MPI (nn.h: dpt_model_create, dpt_model_forward) is
 *   local and needs no dpt_comm.
 *
 * The modules, one header each: status.h (status codes, the error message), core.h (allocation,
 * assertions, Philox), nn.h (layers, models, losses), optim.h (SGD, Adam), config.h (the JSON
 * configuration), data.h (the HDF5 dataset format, shards, converters), comm.h (the MPI world),
 * checkpoint.h and io.h (checkpoints, weights, prediction files), train.h (fit, evaluate,
 * predict). */
#ifndef DPTRAIN_DPTRAIN_H
#define DPTRAIN_DPTRAIN_H

#define DPTRAIN_VERSION "0.1.0"

#include "dptrain/status.h"
#include "dptrain/core.h"
#include "dptrain/nn.h"
#include "dptrain/metrics.h"
#include "dptrain/optim.h"
#include "dptrain/config.h"
#include "dptrain/data.h"
#include "dptrain/comm.h"
#include "dptrain/checkpoint.h"
#include "dptrain/io.h"
#include "dptrain/train.h"

#endif
