"""Training parity with Keras 3 of the learning-rate schedules (the cases: optim_cases.py)."""
import sys

import optim_cases

sys.exit(optim_cases.run("schedules"))
