"""Code run inside spawned data-parallel test ranks: torch only, no Django (a rank never sets it up)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import torch
import torch.distributed as dist
import torch.nn.functional as F  # noqa: N812
from torch.nn.parallel import DistributedDataParallel

VOCAB = 40


class TinyLM(torch.nn.Module):
    """Answers like a transformers causal LM: `.loss` is the mean next-token loss of the batch."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = torch.nn.Embedding(VOCAB, 16)
        self.head = torch.nn.Linear(16, VOCAB)

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor) -> SimpleNamespace:
        logits = self.head(self.embed(input_ids))[:, :-1]
        return SimpleNamespace(loss=F.cross_entropy(logits.transpose(1, 2), labels[:, 1:]))


def batch(size: int) -> torch.Tensor:
    return torch.randint(0, VOCAB, (size, 12), generator=torch.Generator().manual_seed(1))


def one_step(rank: int, world: int, port: int, size: int, micro: int, out: str) -> None:
    """One data-parallel optimizer step on this rank's shard; rank 0 saves the updated weights."""
    from gpu_worker import finetune_core as core
    from gpu_worker.finetune_distributed import ddp_step, leave_without_teardown

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        model = TinyLM()
        ddp = DistributedDataParallel(model)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
        samples = batch(size)
        own = core.shard(size, rank, world)
        ddp_step(
            ddp,
            optimizer,
            samples[own.start : own.stop],
            global_count=size,
            micro=micro,
            device=torch.device("cpu"),
            lr=0.5,
        )
        if rank == 0:
            torch.save(model.state_dict(), Path(out))
    finally:
        dist.destroy_process_group()
    leave_without_teardown()
