#!/usr/bin/env bash
# launch/mpirun.sh, first on paper (--dry-run: placement, binding, root and oversubscribe flags,
# the environment passed to remote ranks; what it prints is what it runs), then on two "nodes":
# two network namespaces joined by a veth pair (10.99.0.1 <-> 10.99.0.2), each with its own
# hostname, mpirun starting the remote orted through an rsh agent that enters the other namespace.
# The tutorial network trains on 4 ranks (2 per node, TCP between the nodes) from a hostfile, and
# its final weights must be bit-identical to the same 4 ranks on one node: the shards and the
# dropout masks depend on the rank only, never on the host.
# Skips (exit 77) when network namespaces cannot be made here (not root, no `ip netns`).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$SRC" || exit 1
L=launch/mpirun.sh

# ---- --dry-run ------------------------------------------------------------------------------------
# A fake mpirun that records its arguments: a dry run must not call it; a real run must call it
# with exactly what was printed.
cat >"$WORK/fake-mpirun" <<EOF
#!/bin/sh
printf '%s\n' "\$@" >"$WORK/fake.args"
EOF
chmod +x "$WORK/fake-mpirun"
printf '10.99.0.1 slots=2\n10.99.0.2 slots=2\n' >"$WORK/hosts"
many=$(($(nproc) * 2))
# has STRING PART...: STRING contains every PART
has() {
    local s=$1 p
    shift
    for p in "$@"; do [[ "$s" == *"$p"* ]] || return 1; done
}
dry() { MPIRUN=$WORK/fake-mpirun DPTRAIN=/opt/x/dptrain $L --dry-run "$@" 2>"$WORK/dry.err"; }

out=$(dry -n 2 -- fit c.json --epochs 3); rc=$?
if [ $rc -eq 0 ] && [[ "$out" == "+ OPENBLAS_NUM_THREADS=1 $WORK/fake-mpirun -np 2 "* ]] &&
    has "$out" " --map-by slot --bind-to core " " -x OPENBLAS_NUM_THREADS " " /opt/x/dptrain fit c.json --epochs 3" &&
    [[ "$out" != *--oversubscribe* ]] && [ ! -e "$WORK/fake.args" ]; then
    ok "dry run, 2 local ranks: one rank per core, bound, printed and not run"
else
    not_ok "dry run, 2 local ranks" "exit $rc: $out" "$(cat "$WORK/dry.err")"
fi
if [ "$(id -u)" -eq 0 ]; then want=yes; else want=no; fi
[[ "$out" == *--allow-run-as-root* ]] && got=yes || got=no
[ "$got" = "$want" ] && ok "--allow-run-as-root only as root (uid $(id -u): $got)" || not_ok "--allow-run-as-root: $got as uid $(id -u)"

out=$(dry --hostfile "$WORK/hosts" --ppn 2 --threads 2 -- fit c.json); rc=$?
[ $rc -eq 0 ] && [[ "$out" == "+ OPENBLAS_NUM_THREADS=2 "* ]] && has "$out" " -np 4 --hostfile $WORK/hosts " \
    " --map-by ppr:2:node:PE=2 --bind-to core " " -x OPENBLAS_NUM_THREADS " " -x PATH " &&
    [[ "$out" != *--oversubscribe* ]] &&
    ok "dry run, hostfile with 2 hosts, --ppn 2 --threads 2: -np 4, ppr:2:node:PE=2, threads exported" ||
    not_ok "dry run with hostfile" "exit $rc: $out" "$(cat "$WORK/dry.err")"

out=$(OPENBLAS_CORETYPE=SkylakeX DPT_FOO=1 dry --hostfile "$WORK/hosts" --bind socket -- fit c.json); rc=$?
[ $rc -eq 0 ] && [[ "$out" == *" --map-by slot --bind-to socket "* && "$out" == *" -x OPENBLAS_CORETYPE "* && "$out" == *" -x DPT_FOO "* ]] &&
    [[ "$out" != *" -np "* ]] && ok "dry run, --bind socket, no -n: mpirun fills the hostfile's slots; OPENBLAS_CORETYPE and DPT_* passed on" ||
    not_ok "dry run --bind socket" "exit $rc: $out"

out=$(dry -n "$many" -- fit c.json); rc=$?
[ $rc -eq 0 ] && [[ "$out" == *" -np $many "*"--oversubscribe --bind-to none "* ]] && grep -q 'oversubscribing' "$WORK/dry.err" &&
    ok "dry run, $many ranks on $(nproc) CPUs: --oversubscribe, no binding, and says so" ||
    not_ok "dry run oversubscribed" "exit $rc: $out" "$(cat "$WORK/dry.err")"

out=$(dry -n 1 --threads "$(nproc)" -- fit c.json); rc=$?
if [ "$(nproc)" -gt 1 ]; then pe=":PE=$(nproc)"; else pe=''; fi
[ $rc -eq 0 ] && [[ "$out" == *" -np 1 "*"--map-by slot$pe --bind-to core "* ]] && [[ "$out" != *--oversubscribe* ]] &&
    ok "dry run, 1 rank x $(nproc) threads fills the cores without oversubscribing" || not_ok "dry run 1 x $(nproc)" "exit $rc: $out"

bad=0
for args in "--bind numa -- fit c.json" "-n 0 -- fit c.json" "--threads x -- fit c.json" "fit c.json" "-n 2" \
    "--hostfile $WORK/none -- fit c.json"; do
    # shellcheck disable=SC2086
    dry $args >/dev/null
    rc=$?
    [ $rc -eq 2 ] && [ -s "$WORK/dry.err" ] || { bad=1; not_ok "bad arguments '$args': exit $rc" "$(cat "$WORK/dry.err")"; }
done
[ $bad -eq 0 ] && ok "bad arguments (--bind numa, -n 0, --threads x, no --, nothing to run, missing hostfile): exit 2 with a message"

printed=$(dry --hostfile "$WORK/hosts" --ppn 2 --mca btl_tcp_if_include 10.99.0.0/24 -- fit 'my config.json')
MPIRUN=$WORK/fake-mpirun DPTRAIN=/opt/x/dptrain $L --hostfile "$WORK/hosts" --ppn 2 \
    --mca btl_tcp_if_include 10.99.0.0/24 -- fit 'my config.json' 2>"$WORK/real.err"
printf -v ran '+ OPENBLAS_NUM_THREADS=1'
while IFS= read -r a; do printf -v ran '%s %q' "$ran" "$a"; done < <(echo "$WORK/fake-mpirun"; cat "$WORK/fake.args")
[ "$printed" = "$ran" ] && grep -qxF -- "$printed" "$WORK/real.err" &&
    ok "a real run executes exactly the command it prints (incl. --mca and a quoted argument)" ||
    not_ok "printed vs executed" "printed: $printed" "ran:     $ran"

# ---- two nodes in network namespaces ---------------------------------------------------------------
skip() {
    echo "skipped: $* ($passed passed, $failed failed before that)"
    [ "$failed" -eq 0 ] && exit 77
    finish
    exit 1
}
[ "$(id -u)" -eq 0 ] || skip "network namespaces need root"
command -v ip >/dev/null && command -v unshare >/dev/null || skip "ip (iproute2) or unshare missing"
command -v h5diff >/dev/null || skip "h5diff (hdf5-tools) not installed"
source tests/slurm/weights.sh

nsA=dpt$$a nsB=dpt$$b vA=dv$$a vB=dv$$b
cleanup() {
    local ns p
    for ns in $nsA $nsB; do
        for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
        ip netns del "$ns" 2>/dev/null # also removes its end of the veth pair, and so the pair
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
err=$(ip netns add "$nsA" 2>&1) || skip "ip netns add is not permitted here: $err"
err=$({ ip netns add "$nsB" && ip link add "$vA" type veth peer name "$vB" &&
    ip link set "$vA" netns "$nsA" && ip link set "$vB" netns "$nsB" &&
    ip -n "$nsA" addr add 10.99.0.1/24 dev "$vA" && ip -n "$nsB" addr add 10.99.0.2/24 dev "$vB" &&
    ip -n "$nsA" link set lo up && ip -n "$nsB" link set lo up &&
    ip -n "$nsA" link set "$vA" up && ip -n "$nsB" link set "$vB" up; } 2>&1) ||
    skip "cannot build the veth pair between namespaces: $err"
err=$(ip netns exec "$nsA" unshare --uts true 2>&1) || skip "unshare --uts not permitted: $err"

# mpirun's remote-start agent ("AGENT [options] HOST COMMAND..."): instead of ssh, enter HOST's
# namespace under its own hostname. Unlike ssh it passes mpirun's whole environment on, so this
# does not prove that mpirun.sh exports enough for a real cluster (the dry-run checks above do).
cat >"$WORK/netns-rsh" <<EOF
#!/bin/bash
while [[ "\${1:-}" == -* ]]; do shift; done
host=\$1; shift
case "\$host" in
    10.99.0.1) ns=$nsA hn=nodeA ;;
    10.99.0.2) ns=$nsB hn=nodeB ;;
    *) echo "netns-rsh: unknown host \$host" >&2; exit 255 ;;
esac
exec ip netns exec "\$ns" unshare --uts /bin/sh -c "hostname \$hn; \$*"
EOF
chmod +x "$WORK/netns-rsh"
ok "two namespaces $nsA/$nsB joined by veth 10.99.0.1 <-> 10.99.0.2"

data=$WORK/tutorial.h5
"$DPTRAIN" data synth --samples 1000 --features 20 --seed 1 --out "$data" >/dev/null || not_ok "data synth"
export DPTRAIN

run_cmd "$WORK/one" 120 $L -n 4 -- fit examples/tutorial.json --data "$data" --run-dir "$WORK/one"
[ "$RC" -eq 0 ] && grep -q 'placement: 4 ranks on 1 host' "$WORK/one.out" &&
    grep -q 'gradient exchange: shared memory (4 ranks on the node)' "$WORK/one.out" &&
    ok "4 ranks on one node via mpirun.sh (${SECS}s)" || not_ok "one-node run" "exit $RC" "$(tail -3 "$WORK/one.err")"

# Both "nodes" believe they own the machine's cores, so their ranks share the same physical cores
# (bound to the same ones) and spin in MPI waits: without yield_when_idle this run takes 50 s, not 3.
tx0=$(ip -n "$nsA" -s link show "$vA" | awk '/TX:/ {getline; print $1}')
run_cmd "$WORK/two" 120 ip netns exec "$nsA" unshare --uts /bin/sh -c \
    "hostname nodeA && OMPI_MCA_plm_rsh_agent='$WORK/netns-rsh' OMPI_MCA_mpi_yield_when_idle=1 exec $L --hostfile '$WORK/hosts' --ppn 2 -- \
     fit examples/tutorial.json --data '$data' --run-dir '$WORK/two'"
tx=$(($(ip -n "$nsA" -s link show "$vA" | awk '/TX:/ {getline; print $1}') - tx0))
if [ "$RC" -eq 0 ] && grep -qE 'placement: 4 ranks on 2 hosts' "$WORK/two.out" &&
    grep -q 'gradient exchange: shared memory (2 ranks per node), MPI_Allreduce between 2 nodes' "$WORK/two.out"; then
    ok "4 ranks on 2 nodes from a hostfile (${SECS}s): $(grep -o 'placement: .*' "$WORK/two.out" | head -c 100)"
else
    not_ok "two-node run" "exit $RC" "$(grep placement "$WORK/two.out")" "$(tail -5 "$WORK/two.err")"
fi
grep -q -- '--map-by ppr:2:node --bind-to core' "$WORK/two.err" && ok "two-node run mapped 2 per node, bound to cores" ||
    not_ok "two-node mpirun line" "$(grep '^+' "$WORK/two.err")"
[ "$tx" -gt 1000000 ] && ok "gradients crossed the veth: $tx bytes sent by node A" || not_ok "only $tx bytes over the veth"
if same_weights "$WORK/one/final.h5" "$WORK/two/final.h5"; then
    ok "final weights on 2 nodes (shared memory in each, MPI between) bit-identical to 1 node ($WEIGHTS_COUNT datasets, h5diff)"
else
    not_ok "final weights 2 nodes vs 1 node" "$WEIGHTS_DIFF"
fi

# reproducible mode: 2 nodes x 2 ranks = 1 rank, byte for byte (not only 4 ranks on one node)
run_cmd "$WORK/r1" 120 $L -n 1 -- fit examples/tutorial.json --data "$data" --reproducible --run-dir "$WORK/r1"
run_cmd "$WORK/r2" 120 ip netns exec "$nsA" unshare --uts /bin/sh -c \
    "hostname nodeA && OMPI_MCA_plm_rsh_agent='$WORK/netns-rsh' OMPI_MCA_mpi_yield_when_idle=1 exec $L --hostfile '$WORK/hosts' --ppn 2 -- \
     fit examples/tutorial.json --data '$data' --reproducible --run-dir '$WORK/r2'"
if [ "$RC" -eq 0 ] && grep -qE 'placement: 4 ranks on 2 hosts' "$WORK/r2.out" &&
    same_weights "$WORK/r1/final.h5" "$WORK/r2/final.h5"; then
    ok "reproducible mode: 2 nodes x 2 ranks give the 1-rank weights ($WEIGHTS_COUNT datasets, h5diff)"
else
    not_ok "reproducible mode on 2 nodes" "exit $RC" "${WEIGHTS_DIFF:-}" "$(tail -3 "$WORK/r2.err")"
fi

finish
