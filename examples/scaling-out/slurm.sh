#!/usr/bin/env bash
# sbatch slurm.sh: one tl worker per node (untested here). The first node of the allocation is the chief.
#SBATCH --job-name=tl
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --cpus-per-task=8
#SBATCH --time=02:00:00
set -euo pipefail
MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
export MASTER_ADDR
# single quotes: each node's task expands its own SLURM_NODEID (the batch script's would be 0 on every node)
srun bash -c 'exec torchrun --nnodes="$SLURM_NNODES" --nproc-per-node=1 --node-rank="$SLURM_NODEID" \
    --max-restarts=3 --master-addr="$MASTER_ADDR" --master-port=29500 -m tlcli run configuration.json'
