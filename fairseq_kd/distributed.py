"""fairseq's own DDP over CPU ranks launched by ``torchrun`` (debugging, the tests, the training benchmark).

On CPU fairseq needs: the gloo backend; ``legacy_ddp`` (fairseq passes ``device_ids=[0]`` to torch's DDP,
which CPU modules refuse); and the rank from torchrun's environment with ``distributed_no_spawn`` (fairseq's
torchrun path divides the rank by the GPU count). See README "Several GPUs or nodes".
"""
from typing import List


def cpu_ddp_overrides(world_size: int) -> List[str]:
    """Hydra overrides for ``torchrun --nproc-per-node=<world_size> --no-python fairseq-hydra-train ...``."""
    return [f"distributed_training.distributed_world_size={world_size}",
            "distributed_training.distributed_backend=gloo", "distributed_training.ddp_backend=legacy_ddp",
            "distributed_training.distributed_init_method=env://", "distributed_training.distributed_no_spawn=true",
            "distributed_training.distributed_rank=${oc.env:RANK}"]
