"""Log-mel filterbank features for the from-scratch Conformer, computed in the data-loader workers.

:class:`FbankFeatureDataset` wraps fairseq's :class:`~fairseq.data.FileAudioDataset` (which reads the
manifest and the audio) and replaces each waveform by Kaldi-compatible log-mel filterbanks from
``kaldi-native-fbank`` (25 ms window, 10 ms shift), normalised per utterance (mean 0, variance 1 per
channel), optionally SpecAugment-ed (fairseq's :class:`SpecAugmentTransform`, training splits only).

Batch layout from :meth:`FbankFeatureDataset.collater`::

    net_input.source        B x T x F  float, zero-padded at the end
    net_input.padding_mask  B x T      bool, True on padded frames

Dataset sizes stay in audio samples (as in the manifest), so ``max_tokens`` means the same thing for the
waveform (wav2vec 2.0) and the filterbank models.
"""
from typing import Optional

import kaldi_native_fbank as knf
import numpy as np
import torch
from fairseq.data import BaseWrapperDataset
from fairseq.data.audio.feature_transforms.specaugment import SpecAugmentTransform

FRAME_SHIFT_MS = 10.0
FRAME_LENGTH_MS = 25.0


def compute_fbank(waveform: np.ndarray, sample_rate: int, num_mel_bins: int) -> np.ndarray:
    """``waveform`` float in [-1, 1] (1-D) -> log-mel filterbanks, ``num_frames x num_mel_bins`` float32.

    Samples are scaled to the 16-bit range Kaldi expects; no dither, so features are deterministic.
    The number of frames is ``1 + (num_samples - 400) // 160`` at 16 kHz (Kaldi ``snip_edges``).
    """
    opts = knf.FbankOptions()
    opts.frame_opts.samp_freq = sample_rate
    opts.frame_opts.dither = 0.0
    opts.frame_opts.frame_shift_ms = FRAME_SHIFT_MS
    opts.frame_opts.frame_length_ms = FRAME_LENGTH_MS
    opts.mel_opts.num_bins = num_mel_bins
    fbank = knf.OnlineFbank(opts)
    fbank.accept_waveform(sample_rate, (waveform * 32768.0).astype(np.float32))
    fbank.input_finished()
    if fbank.num_frames_ready == 0:
        return np.zeros((0, num_mel_bins), dtype=np.float32)
    return np.stack([fbank.get_frame(i) for i in range(fbank.num_frames_ready)]).astype(np.float32)


def utterance_cmvn(features: np.ndarray) -> np.ndarray:
    mean = features.mean(axis=0, keepdims=True)
    std = features.std(axis=0, keepdims=True)
    return (features - mean) / np.maximum(std, 1e-5)


class FbankFeatureDataset(BaseWrapperDataset):
    """Wraps a waveform dataset (items ``{"id", "source": 1-D float tensor}``) and yields filterbanks."""

    def __init__(self, dataset, sample_rate: int, num_mel_bins: int = 80,
                 specaugment: Optional[SpecAugmentTransform] = None):
        super().__init__(dataset)
        self.sample_rate = sample_rate
        self.num_mel_bins = num_mel_bins
        self.specaugment = specaugment

    def __getitem__(self, index):
        item = self.dataset[index]
        features = utterance_cmvn(compute_fbank(item["source"].numpy(), self.sample_rate, self.num_mel_bins))
        if self.specaugment is not None:
            features = self.specaugment(features)
        item["source"] = torch.from_numpy(np.ascontiguousarray(features))
        return item

    def collater(self, samples):
        samples = [s for s in samples if s["source"] is not None]
        if not samples:
            return {}
        lengths = torch.tensor([s["source"].size(0) for s in samples])
        source = samples[0]["source"].new_zeros(len(samples), int(lengths.max()), self.num_mel_bins)
        for i, s in enumerate(samples):
            source[i, : lengths[i]] = s["source"]
        padding_mask = torch.arange(source.size(1))[None, :] >= lengths[:, None]
        return {"id": torch.LongTensor([s["id"] for s in samples]),
                "net_input": {"source": source, "padding_mask": padding_mask}}
