#!/usr/bin/env bash
# Two machines, one worker each (untested here). Run on both; NODE_RANK=0 on the first, 1 on the other.
# MASTER_ADDR is the first machine's address, reachable from the other; the port must be open between them.
# When a worker dies, torchrun restarts every worker (up to 3 times): they continue from the last epoch.
set -euo pipefail
: "${NODE_RANK:?set NODE_RANK to 0 on the first machine and 1 on the second}"
MASTER_ADDR=${MASTER_ADDR:-10.0.0.1}
torchrun --nnodes=2 --nproc-per-node=1 --node-rank="$NODE_RANK" --max-restarts=3 \
    --master-addr="$MASTER_ADDR" --master-port=29500 \
    -m tlcli run configuration.json
