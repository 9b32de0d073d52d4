/* dptrain — public API: everything a C program needs to build a model, load data and train it
 * data-parallel from its own MPI program. See README.md and docs/DESIGN.md. */
#ifndef DPTRAIN_DPTRAIN_H
#define DPTRAIN_DPTRAIN_H

#define DPTRAIN_VERSION "0.1.0"

#include "dptrain/status.h"
#include "dptrain/core.h"
#include "dptrain/nn.h"
#include "dptrain/optim.h"
#include "dptrain/config.h"
#include "dptrain/data.h"
#include "dptrain/comm.h"
#include "dptrain/checkpoint.h"
#include "dptrain/io.h"
#include "dptrain/train.h"

#endif
