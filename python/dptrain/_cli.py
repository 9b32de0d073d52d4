"""The `dptrain` console entry installed with the package: execs the C binary with the same
arguments, so `pip install ./python` gives both `import dptrain` and the command."""
import os
import sys

from ._binary import DptrainError, find_binary


def main():
    try:
        exe = find_binary()
    except DptrainError as e:
        print("dptrain: %s" % e, file=sys.stderr)
        return e.exit_code
    os.execv(exe, [exe] + sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
