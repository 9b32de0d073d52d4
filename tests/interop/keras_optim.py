"""Training parity with Keras 3 of Nadam, Adamax, Adagrad, Adadelta, Lion, amsgrad and weight_decay (the cases: optim_cases.py)."""
import sys

import optim_cases

sys.exit(optim_cases.run("optimizers"))
