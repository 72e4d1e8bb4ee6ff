"""Task ``audio_kd``: fairseq's ``audio_finetuning`` (wav2vec manifests + labels) with input validation,
filterbank features for from-scratch models and a parallel greedy CTC generator.

Data directory (``task.data``), as for ``audio_finetuning``: ``{split}.tsv``, ``{split}.{labels}``,
``dict.{labels}.txt``. What this task adds:

* every split is validated before loading (:func:`fairseq_kd.data.manifest.check_split`): missing or
  unreadable audio, a wrong sample rate, label files whose line count differs from the manifest, empty
  transcripts and symbols outside the dictionary fail with the file, the line and the fix;
* ``features=fbank`` turns waveforms into log-mel filterbanks in the data-loader workers
  (:class:`~fairseq_kd.data.fbank_dataset.FbankFeatureDataset`), ``features=waveform`` keeps fairseq's
  raw-audio batches for wav2vec 2.0 models;
* ``kd_sidecar_dir`` adds the masked-LM teacher's top-k targets (``sample["teacher"]``) from the sidecars of
  ``scripts/extract_teacher_sidecar.py``, matched to the audio by manifest line and ``id``
  (:mod:`fairseq_kd.data.teacher_sidecar`); :attr:`AudioKdTask.teacher_header` describes their teacher;
* training and validation log the audio of each batch beside fairseq's ``wpb`` / ``wps``: ``apb`` (audio
  seconds per batch) and ``aps`` (audio seconds per wall-clock second, the throughput that matters for
  speech), from the valid frames of the batch (:meth:`AudioKdTask.audio_seconds`);
* :meth:`AudioKdTask.build_generator` returns the CTC decoder that ``fairseq-generate`` drives, chosen by
  ``--ctc-decoder``: batched greedy (default), beam search without LM, or beam search with KenLM shallow
  fusion (see docs/decoding.md). Decoder options are read from the command line (``self.cfg`` and the
  generation config), never from the checkpoint's saved task config;
* ``--decoding-summary PATH`` records the decoding in a JSON file (WER, S/D/I, time, per-utterance errors;
  :mod:`fairseq_kd.decoding.summary`) that ``scripts/collect_results.py`` reads, written once the last utterance
  is decoded: a decoding that did not finish leaves none.
"""
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Optional

from fairseq.data.audio.feature_transforms.specaugment import SpecAugmentTransform
from fairseq.data.iterators import EpochBatchIterator
from fairseq.dataclass import ChoiceEnum
from fairseq.logging import metrics
from fairseq.tasks import register_task
from fairseq.tasks.audio_finetuning import AudioFinetuningConfig, AudioFinetuningTask
from omegaconf import OmegaConf, open_dict

from ..console import label_greedy_decoding
from ..data.fbank_dataset import FRAME_SHIFT_MS, FbankFeatureDataset
from ..data.manifest import check_split
from ..data.teacher_sidecar import attach_teacher_sidecar, read_teacher_meta, sidecar_path
from ..decoding import CtcDecodingConfig, build_ctc_decoder
from ..decoding.summary import DecodingSummary, decoder_settings
from ..errors import DataError

logger = logging.getLogger(__name__)

FEATURE_CHOICES = ChoiceEnum(["fbank", "waveform"])


@dataclass
class AudioKdConfig(AudioFinetuningConfig, CtcDecodingConfig):
    """``audio_finetuning``'s fields, the ones below (input checks, features, teacher sidecars) and, for
    ``fairseq-generate``, the CTC decoder options of :class:`~fairseq_kd.decoding.config.CtcDecodingConfig`."""


    labels: str = field(default="ltr", metadata={"help": "extension of the label files the CTC head learns "
                                                         "({split}.ltr letters, {split}.spm pieces, ...)"})
    features: FEATURE_CHOICES = field(
        default="fbank",
        metadata={"help": "model input: 'fbank' (log-mel filterbanks from kaldi-native-fbank, for the "
                          "from-scratch ctc_kd Conformer) or 'waveform' (raw audio, for wav2vec_ctc_kd)"})
    num_mel_bins: int = field(default=80, metadata={"help": "filterbank channels (features=fbank)"})
    specaug_freq_mask_n: int = field(default=0, metadata={
        "help": "SpecAugment frequency masks per utterance (features=fbank, splits named train*); 2 is usual"})
    specaug_freq_mask_f: int = field(default=27, metadata={"help": "SpecAugment maximum frequency-mask width"})
    specaug_time_mask_n: int = field(default=0, metadata={
        "help": "SpecAugment time masks per utterance (features=fbank, splits named train*); 2 is usual"})
    specaug_time_mask_t: int = field(default=40, metadata={"help": "SpecAugment maximum time-mask width (frames)"})
    specaug_time_mask_p: float = field(default=0.2, metadata={
        "help": "SpecAugment: a time mask covers at most this fraction of the utterance"})
    check_audio_files: bool = field(default=True, metadata={
        "help": "open every audio header at load time (existence, sample rate, length; ~0.1 ms per file)"})
    kd_sidecar_dir: Optional[str] = field(default=None, metadata={
        "help": "directory of the teacher sidecars ({split}.kd.*, teacher.json) written by "
                "scripts/extract_teacher_sidecar.py; batches then carry sample['teacher'] (top-k targets of the "
                "attention decoder). Splits named train* must have a sidecar, others load without one if absent"})
    kd_topk: Optional[int] = field(default=None, metadata={
        "help": "teacher tokens per position used for distillation: the first kd_topk of the K stored, "
                "renormalised to sum 1 (at most K; default all K)"})


def utterances_in(batches: EpochBatchIterator) -> int:
    """The number of utterances an epoch of ``batches`` yields (fairseq's batches, after its size filter).

    Raises :class:`~fairseq_kd.errors.DataError` for a sharded iterator: fairseq-generate shards by
    ``--distributed-world-size``, whose default is the number of visible GPUs, and then decodes shard 0 alone."""
    if batches.num_shards > 1:
        raise DataError(f"fairseq-generate would decode shard {batches.shard_id} of {batches.num_shards} only "
                        f"(--distributed-world-size defaults to the number of visible GPUs): pass "
                        f"--distributed-world-size 1 to decode the whole subset")
    return sum(len(batch) for batch in batches.frozen_batches)


@register_task("audio_kd", dataclass=AudioKdConfig)
class AudioKdTask(AudioFinetuningTask):
    """Speech recognition with CTC (+ InterCTC, + teacher distillation) on wav2vec-style manifests."""

    cfg: AudioKdConfig
    decoding_summary: Optional[DecodingSummary] = None  # set by build_generator with --decoding-summary
    utterances_to_decode: Optional[int] = None  # with --decoding-summary: those of the last batch iterator built

    def load_dataset(self, split: str, task_cfg: AudioKdConfig = None, **kwargs):
        task_cfg = task_cfg or self.cfg
        if task_cfg.multi_corpus_keys is not None or task_cfg.binarized_dataset:
            raise DataError("audio_kd reads one {split}.tsv manifest per split; multi_corpus_keys and "
                            "binarized_dataset are not supported")
        if task_cfg.features == "fbank" and task_cfg.normalize:
            raise DataError("task.normalize=true normalises waveforms; with task.features=fbank the "
                            "filterbanks are normalised per utterance instead: set task.normalize=false")
        check_split(self.cfg.data, split, [task_cfg.labels], {task_cfg.labels: self.target_dictionary},
                    task_cfg.sample_rate, check_audio=self.cfg.check_audio_files)
        super().load_dataset(split, task_cfg, **kwargs)

        labelled = self.datasets[split]  # AddTargetDataset(FileAudioDataset)
        audio = labelled.dataset
        if task_cfg.features == "fbank":
            labelled.dataset = FbankFeatureDataset(audio, task_cfg.sample_rate, task_cfg.num_mel_bins,
                                                   self._specaugment(task_cfg) if split.startswith("train") else None)
        elif self.cfg.max_sample_size is not None and len(audio.sizes) and audio.sizes.max() > self.cfg.max_sample_size:
            # fairseq's raw-audio collater would crop such utterances at random, silently cutting their labels
            raise DataError(f"{split}.tsv: longest utterance has {audio.sizes.max()} samples, more than "
                            f"task.max_sample_size={self.cfg.max_sample_size}; fairseq would crop it and misalign "
                            f"its transcript: raise task.max_sample_size or remove long utterances")
        if self.cfg.kd_sidecar_dir:
            self._attach_teacher(split, audio.skipped_indices)

    def _attach_teacher(self, split, skipped_indices):
        """Teacher targets from ``self.cfg`` (the command line / training config), never from the ``task_cfg``
        of a checkpoint: ``fairseq-generate`` passes the training run's task config, and decoding needs no
        teacher."""
        sidecar_dir = self.cfg.kd_sidecar_dir
        if not split.startswith("train") and not os.path.isfile(sidecar_path(sidecar_dir, split, "json")):
            logger.warning(f"{split}: no teacher sidecar in {sidecar_dir}; its batches carry no teacher targets")
            return
        self.datasets[split] = attach_teacher_sidecar(self.datasets[split], sidecar_dir, self.cfg.data, split,
                                                      skipped_indices, self.cfg.kd_topk)

    def build_model(self, model_cfg, from_checkpoint=False):
        """fairseq's ``build_model``, then the values the model resolved while building (architecture sizes,
        teacher vocabulary, dictionary fingerprint) are written back into ``model_cfg``: that is the config
        fairseq saves in checkpoints, and ``fairseq-generate`` must rebuild exactly the trained model."""
        model = super().build_model(model_cfg, from_checkpoint)
        resolved = getattr(model, "cfg", None)
        if OmegaConf.is_config(resolved) and OmegaConf.is_config(model_cfg) and resolved is not model_cfg:
            with open_dict(model_cfg):
                for key in resolved:
                    if key != "_name" and model_cfg.get(key) != resolved[key]:
                        model_cfg[key] = resolved[key]
        return model

    def load_state_dict(self, state_dict):
        """Restore the task state saved in a checkpoint (its label dictionary), refusing a different one.

        fairseq replaces the dictionary read from ``task.data`` by the checkpoint's, but ``fairseq-generate``
        has already taken the data directory's copy to print hypotheses and score WER: a dictionary rebuilt
        from other transcripts (another symbol order) would silently turn every label into another letter.
        """
        saved = state_dict.get("target_dictionary")
        if saved is not None and self.cfg.labels:
            local = self.load_target_dictionary()
            if local.symbols != saved.symbols:
                raise DataError(
                    f"{os.path.join(self.cfg.target_dictionary or self.cfg.data, f'dict.{self.cfg.labels}.txt')} is "
                    f"not the dictionary this checkpoint was trained with ({len(local)} vs {len(saved)} symbols"
                    f"{', same symbols in another order' if set(local.symbols) == set(saved.symbols) else ''}); "
                    f"decode with the training data directory's dict.{self.cfg.labels}.txt (or "
                    f"--target-dictionary DIR)")
        super().load_state_dict(state_dict)

    @property
    def teacher_header(self) -> Optional[dict]:
        """``teacher.json`` of ``task.kd_sidecar_dir`` (``vocab_size``, ``vocab_sha256``, ``special_ids``,
        ``topk``, ``temperature``, ``fingerprint``), or None without sidecars."""
        return read_teacher_meta(self.cfg.kd_sidecar_dir) if self.cfg.kd_sidecar_dir else None

    def audio_seconds(self, sample) -> float:
        """Seconds of audio in a batch: valid filterbank frames x 10 ms, or valid waveform samples / rate."""
        net_input = sample["net_input"]
        source, padding_mask = net_input["source"], net_input.get("padding_mask")
        valid = source.shape[0] * source.shape[1] if padding_mask is None else int((~padding_mask).sum())
        return valid * (FRAME_SHIFT_MS / 1000 if self.cfg.features == "fbank" else 1 / self.cfg.sample_rate)

    def train_step(self, sample, model, criterion, optimizer, update_num, ignore_grad=False):
        loss, sample_size, logging_output = super().train_step(sample, model, criterion, optimizer, update_num,
                                                               ignore_grad)
        logging_output["audio_seconds"] = 0.0 if ignore_grad else self.audio_seconds(sample)
        return loss, sample_size, logging_output

    def valid_step(self, sample, model, criterion):
        loss, sample_size, logging_output = super().valid_step(sample, model, criterion)
        logging_output["audio_seconds"] = self.audio_seconds(sample)
        return loss, sample_size, logging_output

    def reduce_metrics(self, logging_outputs, criterion):
        """fairseq's metrics (``wpb``, ``wps``, ``bsz``, the criterion's), plus ``apb`` and ``aps``: audio
        seconds per batch and per wall-clock second."""
        super().reduce_metrics(logging_outputs, criterion)
        audio = sum(log.get("audio_seconds", 0.0) for log in logging_outputs)
        if audio > 0:
            metrics.log_scalar("apb", audio, priority=185, round=1)
            metrics.log_speed("aps", audio, priority=95, round=1)

    @staticmethod
    def _specaugment(task_cfg):
        if task_cfg.specaug_freq_mask_n == 0 and task_cfg.specaug_time_mask_n == 0:
            return None
        return SpecAugmentTransform(
            freq_mask_n=task_cfg.specaug_freq_mask_n, freq_mask_f=task_cfg.specaug_freq_mask_f,
            time_mask_n=task_cfg.specaug_time_mask_n, time_mask_t=task_cfg.specaug_time_mask_t,
            time_mask_p=task_cfg.specaug_time_mask_p, mask_value=0.0)

    def get_batch_iterator(self, dataset, *args, required_batch_size_multiple=1, **kwargs):
        """fairseq's iterator with ``required_batch_size_multiple`` forced to 1.

        fairseq 0.12's vectorised ``batch_by_size`` drops the utterances left over after the last full batch
        whenever the multiple is above 1 (the default is 8): ``fairseq-generate`` silently skipped 3 of 10
        test utterances, and every training epoch lost a few. Padding efficiency does not need the multiple
        for variable-length audio, so this task always uses 1.
        """
        if required_batch_size_multiple != 1:
            logger.info(f"required_batch_size_multiple={required_batch_size_multiple} -> 1: fairseq would drop "
                        f"the remainder batch")
        batches = super().get_batch_iterator(dataset, *args, required_batch_size_multiple=1, **kwargs)
        if self.cfg.decoding_summary:  # fairseq-generate: the summary is complete after these utterances
            self.utterances_to_decode = utterances_in(batches)
        return batches

    def build_generator(self, models, args, seq_gen_cls=None, extra_gen_cls_kwargs=None, **kwargs):
        """The CTC decoder named by ``--ctc-decoder``; ``args`` is fairseq-generate's generation config. With
        ``--decoding-summary`` every batch decoded through :meth:`inference_step` is also recorded there, and the
        file is written after the last utterance of the batch iterator fairseq-generate built before (their
        number: :attr:`utterances_to_decode`)."""
        generator = build_ctc_decoder(self.cfg, self.target_dictionary, args)
        if self.cfg.ctc_decoder == "greedy":
            label_greedy_decoding()
        self.decoding_summary = None
        if self.cfg.decoding_summary:
            if self.utterances_to_decode is None:
                raise ValueError("--decoding-summary: build the batch iterator of the subset to decode "
                                 "(task.get_batch_iterator) before the generator, as fairseq-generate does")
            self.decoding_summary = DecodingSummary(self.cfg.decoding_summary, self.target_dictionary,
                                                    self.cfg.eval_wer_post_process, decoder_settings(self.cfg, args),
                                                    self.utterances_to_decode)
        return generator

    def inference_step(self, generator, models, sample, prefix_tokens=None, constraints=None):
        """fairseq's step; with ``--decoding-summary`` timed (the span of fairseq-generate's own timer) and
        recorded."""
        start = time.perf_counter()
        hypotheses = super().inference_step(generator, models, sample, prefix_tokens=prefix_tokens,
                                            constraints=constraints)
        if self.decoding_summary is not None:
            self.decoding_summary.add(sample, hypotheses, time.perf_counter() - start, self.audio_seconds(sample))
        return hypotheses
