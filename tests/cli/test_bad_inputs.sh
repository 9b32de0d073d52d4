#!/usr/bin/env bash
# The bad-input table (tests/bad_inputs/cases.txt: configs, datasets, checkpoints, command lines,
# the environment) at 3 ranks: exit code, a one-line message naming the file and the field, every
# rank gone within 10 s, no core dump, no sanitizer report. See tests/bad_inputs/run.sh.
exec bash "$(dirname "${BASH_SOURCE[0]}")/../bad_inputs/run.sh" "${1:?usage: $0 PATH/TO/dptrain}"
