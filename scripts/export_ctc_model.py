#!/usr/bin/env python3
"""Export a ctc_kd / wav2vec_ctc_kd checkpoint for inference: greedy CTC needs neither the attention decoder
(training-only, for distillation) nor the optimizer state.

The exported file keeps the model weights of the encoder and CTC projection and the configuration, with
``model.aed_layers`` and ``model.inter_ctc_layers`` emptied, so ``fairseq-generate --path`` gives the same
output as with the training checkpoint, from a smaller file. Written atomically.

  python scripts/export_ctc_model.py exp/xs_interaedkd/checkpoint_best.pt exp/xs_interaedkd/model_ctc.pt
"""
import argparse
import os

import torch
from fairseq import checkpoint_utils
from omegaconf import OmegaConf, open_dict

import fairseq_kd  # noqa: F401  (safe checkpoint loading, see fairseq_kd/checkpoints.py)
from fairseq_kd.io_utils import atomic_write
from fairseq_kd.models.conformer_kd import inference_state_dict


def export(src: str, dst: str) -> dict:
    state = checkpoint_utils.load_checkpoint_to_cpu(src)
    cfg = state["cfg"]
    if cfg.model._name not in ("ctc_kd", "wav2vec_ctc_kd") and not str(cfg.model._name).startswith("ctc_kd_"):
        raise SystemExit(f"{src}: model {cfg.model._name} is not a fairseq_kd CTC model")
    model = inference_state_dict(state["model"])
    dropped = [k for k in state["model"] if k not in model]
    with open_dict(cfg):
        cfg.model.aed_layers = []
        cfg.model.inter_ctc_layers = []
    # the config as plain containers, as fairseq saves it (loads with torch's weights-only unpickler)
    exported = {"cfg": OmegaConf.to_container(cfg), "model": model,
                "extra_state": {"exported_from": os.path.abspath(src)},
                "optimizer_history": state.get("optimizer_history", []), "last_optimizer_state": None}
    with atomic_write(dst, "wb") as f:
        torch.save(exported, f)
    return {"dropped_tensors": len(dropped), "dropped_parameters": sum(state["model"][k].numel() for k in dropped),
            "kept_parameters": sum(v.numel() for v in model.values()),
            "bytes_before": os.path.getsize(src), "bytes_after": os.path.getsize(dst)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="training checkpoint (checkpoint_best.pt, ...)")
    parser.add_argument("output", help="inference checkpoint to write")
    args = parser.parse_args()
    info = export(args.checkpoint, args.output)
    print(f"{args.output}: removed the attention decoder ({info['dropped_parameters']:,} parameters) and the "
          f"optimizer state; {info['kept_parameters']:,} parameters kept; "
          f"{info['bytes_before'] / 2**20:.1f} MiB -> {info['bytes_after'] / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
