#!/usr/bin/env bash
# The rooms' rules (docs/DESIGN.md, "Rooms"), checked on the sources:
#  1. a room includes only its own private headers and the public headers of the rooms it may
#     use (the same order the build's layering check enforces for calls);
#  2. MPI appears only in the communication room: no <mpi.h> and no MPI_ identifier in code
#     (comments and string literals aside) outside src/comm and include/dptrain/comm.h.
#   tests/lint/rooms.sh [ROOT]     exit 0 clean, 1 with one line per violation
set -uo pipefail
root=${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
cd "$root" || exit 2
# public header -> the room that owns it
declare -A owner=([status]=core [core]=core [nn]=nn [optim]=optim [comm]=comm [data]=data
    [config]=io [checkpoint]=io [io]=io [train]=train [dptrain]=all)
# room -> rooms it may include (itself included)
declare -A may=([core]="core" [nn]="nn core" [optim]="optim core" [comm]="comm core"
    [data]="data core" [io]="io nn optim core" [train]="train io data comm nn optim core"
    [cli]="cli all train io data comm nn optim core")
bad=0
fail() { echo "rooms: $*"; bad=1; }
allowed() { case " ${may[$1]} " in *" $2 "*) return 0 ;; esac; return 1; }

check_includes() { # file room
    local f=$1 room=$2 inc
    while IFS= read -r inc; do
        case "$inc" in
        dptrain/*.h)
            local h=${inc#dptrain/}; h=${h%.h}
            local o=${owner[$h]:-unknown}
            allowed "$room" "$o" || fail "$f: includes $inc (room $o) but $room may use only: ${may[$room]}" ;;
        */*.h) # a private header of a room: only from that room
            local r=${inc%%/*}
            [ "$r" = "$room" ] || fail "$f: includes $inc, private to src/$r" ;;
        esac
    done < <(sed -n 's/^#include "\([^"]*\)".*/\1/p' "$f")
}
for dir in src/*/; do
    room=$(basename "$dir")
    [ -n "${may[$room]:-}" ] || { fail "src/$room: a room with no rules in tests/lint/rooms.sh"; continue; }
    for f in "$dir"*.c "$dir"*.h; do [ -e "$f" ] && check_includes "$f" "$room"; done
done
for f in include/dptrain/*.h; do
    h=$(basename "$f" .h); room=${owner[$h]:-unknown}
    [ "$room" = all ] && continue
    check_includes "$f" "$room"
done

# 2. MPI only in the communication room
strip() { # C source without comments and string/char literals
    perl -0777 -pe 's{/\*.*?\*/}{ }gs; s{//[^\n]*}{}g; s{"(?:\\.|[^"\\])*"}{""}g; s{'"'"'(?:\\.|[^'"'"'\\])*'"'"'}{0}g' "$1"
}
for f in $(ls src/*/*.c src/*/*.h include/dptrain/*.h); do
    case "$f" in src/comm/* | include/dptrain/comm.h) continue ;; esac
    grep -q '^#include <mpi.h>' "$f" && fail "$f: includes <mpi.h> outside src/comm"
    hits=$(strip "$f" | grep -n 'MPI_[A-Za-z]' | head -3)
    [ -n "$hits" ] && fail "$f: uses MPI outside src/comm (route it through dptrain/comm.h): $(echo "$hits" | tr '\n' ' ')"
done
[ "$bad" = 0 ] && echo "rooms: includes point down, MPI only in src/comm"
exit $bad
