"""Training parity with Keras 3 of clipvalue, clipnorm, global_clipnorm and gradient_accumulation_steps (the cases: optim_cases.py)."""
import sys

import optim_cases

sys.exit(optim_cases.run("options"))
