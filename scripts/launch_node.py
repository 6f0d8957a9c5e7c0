"""srun entry, one task per node (rule train): derive the rendezvous from SLURM_* and exec torchrun.

    srun --nodes=N --ntasks=N --ntasks-per-node=1 \
        python scripts/launch_node.py --nproc-per-node 8 -- scripts/train.py <train args>

Without Slurm it runs torchrun --standalone on this machine. `--dry-run` prints the command.
"""
import sys

from alpha.train import launch

if __name__ == "__main__":
    sys.exit(launch.main())
