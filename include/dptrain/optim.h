/* dptrain — optimizers over the flat parameter buffer, with Keras's exact update rules.
 *
 * State (momentum / Adam moments) lives in flat buffers of n_params floats allocated at create;
 * dpt_optim_step never allocates. All functions are local. The same bytes in give the same bytes
 * out on every rank, so replicas stay bit-identical.
 */
#ifndef DPTRAIN_OPTIM_H
#define DPTRAIN_OPTIM_H

#include <stdbool.h>
#include <stdint.h>

#include "dptrain/status.h"

typedef enum { DPT_OPT_SGD = 0, DPT_OPT_ADAM } dpt_optim_kind;

typedef struct {
    dpt_optim_kind kind;
    double learning_rate; /* SGD 0.01, Adam 0.001 */
    double momentum;      /* SGD: 0 */
    bool nesterov;        /* SGD: false */
    double beta_1;        /* Adam 0.9 */
    double beta_2;        /* Adam 0.999 */
    double epsilon;       /* Adam 1e-7 */
} dpt_optim_spec;

/* Keras defaults for `kind`. */
dpt_optim_spec dpt_optim_defaults(dpt_optim_kind kind);

typedef struct dpt_optim dpt_optim;

DPT_NODISCARD dpt_status dpt_optim_create(const dpt_optim_spec *spec, int64_t n_params,
                                          dpt_optim **out);
void dpt_optim_destroy(dpt_optim **o);

/* One update: params (n) -= f(grads (n)); increments the iteration count first (t = 1 on the
 * first call), as Keras does.
 *   SGD:      v = momentum*v - lr*g;  w += nesterov ? momentum*v - lr*g : v   (v only if momentum>0)
 *   Adam:     m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g^2;
 *             lr_t = lr*sqrt(1-b2^t)/(1-b1^t);  w -= lr_t*m/(sqrt(v)+eps)   (eps OUTSIDE the bias
 *             correction, Keras's convention, unlike PyTorch) */
void dpt_optim_step(dpt_optim *o, float *params, const float *grads);

/* For checkpoints: the iteration count, and the state slots (Adam: 2 slots m, v; SGD with
 * momentum: 1 slot; plain SGD: 0), each n_params floats. Setting the iteration restores it. */
int64_t dpt_optim_iterations(const dpt_optim *o);
void dpt_optim_set_iterations(dpt_optim *o, int64_t t);
int dpt_optim_n_slots(const dpt_optim *o);
float *dpt_optim_slot(dpt_optim *o, int i); /* (n_params) */
const char *dpt_optim_slot_name(const dpt_optim *o, int i); /* "m", "v", "momentum" */
const dpt_optim_spec *dpt_optim_get_spec(const dpt_optim *o);

#endif
