"""What the decoding summary waits for before it is written: every utterance of the batch iterator that
fairseq-generate built (AudioKdTask.get_batch_iterator), the whole subset, never one shard of it."""
import pytest
import torch
from fairseq.data.iterators import EpochBatchIterator
from fairseq.dataclass.configs import GenerationConfig

from fairseq_kd.errors import DataError
from fairseq_kd.tasks.audio_kd import utterances_in


def batches(num_shards=1):
    return EpochBatchIterator(dataset=torch.utils.data.TensorDataset(torch.arange(5)), collate_fn=list,
                              batch_sampler=[[0, 1], [2], [3, 4]], num_shards=num_shards)


def test_the_utterances_to_decode_are_those_of_the_iterator_and_a_shard_is_refused():
    assert utterances_in(batches()) == 5
    with pytest.raises(DataError, match=r"would decode shard 0 of 2 only .* pass --distributed-world-size 1"):
        utterances_in(batches(num_shards=2))


def test_a_summary_needs_the_batch_iterator_before_the_generator(task, tmp_path):
    task.cfg.decoding_summary = str(tmp_path / "summary.json")
    with pytest.raises(ValueError, match="build the batch iterator of the subset to decode"):
        task.build_generator([], GenerationConfig())
