#!/usr/bin/env bash
# Builds raftkv and runs the 3-node cluster of ./Procfile in the foreground (Ctrl-C stops it),
# with goreman when it is on PATH, else honcho (installed into .venv on first use).
#
#   scripts/start-cluster.sh                 all nodes (node1..node3)
#   scripts/start-cluster.sh --clean         wipe data/ first
#   scripts/start-cluster.sh node1 node3     only these Procfile entries (run node2 in another
#                                            terminal; with honcho that is the way to stop one node
#                                            alone, as honcho stops every process when one exits)
#   --clean with names wipes only data/<name> of those nodes.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

clean=0
procs=()
for arg in "$@"; do
    case "$arg" in
        --clean) clean=1 ;;
        -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
        -*) echo "unknown option: $arg" >&2; exit 2 ;;
        *)
            if ! grep -q "^$arg:" Procfile; then
                echo "no process '$arg' in Procfile" >&2
                exit 2
            fi
            procs+=("$arg")
            ;;
    esac
done

"$REPO_ROOT/scripts/setup.sh"

if [ "$clean" = 1 ]; then
    if [ "${#procs[@]}" -gt 0 ]; then
        for p in "${procs[@]}"; do
            log "removing data/$p"
            rm -rf "data/$p"
        done
    else
        log "removing data/"
        rm -rf data
    fi
fi
mkdir -p data

if command -v goreman >/dev/null 2>&1; then
    log "starting with goreman (stop one node: goreman run stop node2; start it: goreman run start node2)"
    exec goreman -f Procfile start "${procs[@]}"
fi

if [ ! -x .venv/bin/honcho ]; then
    log "goreman not found; installing honcho into .venv"
    if [ ! -x .venv/bin/pip ]; then
        if ! python3 -m venv .venv; then
            # Debian's python3 needs python3-venv for ensurepip.
            rm -rf .venv
            $SUDO apt-get update
            $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y python3-venv
            python3 -m venv .venv
        fi
    fi
    .venv/bin/pip install --quiet --disable-pip-version-check honcho
fi
log "starting with honcho (Ctrl-C stops all nodes)"
exec .venv/bin/honcho -f Procfile -d "$REPO_ROOT" start "${procs[@]}"
