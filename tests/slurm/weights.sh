# tests/slurm/weights.sh - sourced by the cluster tests (test_slurm.sh, test_netns.sh).
# shellcheck shell=bash disable=SC2034
#
# same_weights A.h5 B.h5: succeeds when both files hold the same set of weight datasets (every
# HDF5 dataset outside /dptrain: the Keras layout's kernels and biases, /LAYER/LAYER/kernel:0 ...)
# and each pair is bit-identical (h5diff without a tolerance: any difference, even in the last
# bit, fails). Attributes of the root group (Keras version, layer names) and dptrain's own group
# (config text, optimizer state, step counters) are not compared. On failure WEIGHTS_DIFF holds a
# short explanation. Needs h5ls and h5diff (Debian: hdf5-tools).
same_weights() {
    local a=$1 b=$2 la lb d out
    WEIGHTS_DIFF=''
    la=$(h5ls -r "$a" 2>&1 | grep ' Dataset ' | grep -v '^/dptrain/' | sed 's/ *Dataset .*//' | sort) ||
        { WEIGHTS_DIFF="cannot list $a: $la"; return 1; }
    lb=$(h5ls -r "$b" 2>&1 | grep ' Dataset ' | grep -v '^/dptrain/' | sed 's/ *Dataset .*//' | sort) ||
        { WEIGHTS_DIFF="cannot list $b: $lb"; return 1; }
    [ -n "$la" ] || { WEIGHTS_DIFF="no weight datasets in $a"; return 1; }
    [ "$la" = "$lb" ] || { WEIGHTS_DIFF="different datasets: $(echo $la) vs $(echo $lb)"; return 1; }
    for d in $la; do
        out=$(h5diff "$a" "$b" "$d" "$d" 2>&1) || {
            WEIGHTS_DIFF="$d differs: $(echo "$out" | head -n 4 | tr '\n' ' ')"
            return 1
        }
    done
    WEIGHTS_COUNT=$(echo "$la" | wc -l)
    return 0
}
