"""One way of counting word errors (criterion, benchmarks, summaries, results table), and the decoding summary
that fairseq-generate writes through the task with --decoding-summary."""
import json
import random

import jiwer
import pytest
import torch
from fairseq.dataclass.configs import GenerationConfig

from fairseq_kd.decoding.scoring import edit_errors, word_errors


def test_errors_are_jiwers_alignment_and_the_edit_distance():
    rng = random.Random(0)
    for _ in range(300):
        reference = [rng.choice("ABCDE") for _ in range(rng.randint(1, 10))]
        hypothesis = [rng.choice("ABCDE") for _ in range(rng.randint(0, 10))]
        measures = jiwer.process_words(" ".join(reference), " ".join(hypothesis))
        errors = edit_errors(reference, hypothesis)
        assert (errors.substitutions, errors.deletions, errors.insertions) == \
            (measures.substitutions, measures.deletions, measures.insertions)
        assert errors.words == len(reference)


def test_wer_sums_errors_and_words_before_dividing():
    errors = word_errors(["A B C", "X"], ["A C D", "X Y"])
    assert (errors.substitutions, errors.deletions, errors.insertions, errors.words) == (0, 2, 1, 5)
    assert errors.errors == 3 and errors.wer == pytest.approx(60.0)


class _Emissions:
    """A model whose CTC emissions spell given label ids, one per frame, separated by blanks."""

    def __init__(self, paths, vocab):
        frames = max(2 * len(p) for p in paths)
        self.log_probs = torch.full((len(paths), frames, vocab), -10.0)
        self.log_probs[:, :, 0] = 0.0  # blank
        for b, path in enumerate(paths):
            for j, unit in enumerate(path):
                self.log_probs[b, 2 * j, unit], self.log_probs[b, 2 * j, 0] = 0.0, -10.0
        self.lengths = torch.tensor([2 * len(p) for p in paths])

    def ctc_emissions(self, **net_input):
        return self.log_probs, self.lengths


def test_the_task_records_every_decoded_batch_in_the_summary_written_after_the_last(task, tmp_path):
    d = task.target_dictionary
    spell = lambda text: [d.index(c) for c in text.replace(" ", "|")] + [d.index("|")]  # noqa: E731
    summary_path = tmp_path / "summary.json"
    summary_path.write_text("{}")  # a summary of an earlier decoding: deleted when this one starts
    task.cfg.decoding_summary = str(summary_path)
    task.utterances_to_decode = 3  # as get_batch_iterator sets it in fairseq-generate
    generator = task.build_generator([], GenerationConfig(beam=3))
    assert not summary_path.exists()
    batches = [(["THE CAT", "A DOG"], ["THE HAT", "A DOG RAN"], [4, 9]), (["HI"], ["HI"], [2])]
    for hypotheses, references, ids in batches:
        assert not summary_path.exists()  # a decoding is summarised only when it has finished
        target = torch.full((len(references), 12), d.pad())
        for b, reference in enumerate(references):
            target[b, : len(spell(reference))] = torch.tensor(spell(reference))
        sample = {"id": torch.tensor(ids), "target": target,
                  "net_input": {"source": torch.zeros(len(ids), 50, 20), "padding_mask": None}}
        task.inference_step(generator, [_Emissions([spell(h) for h in hypotheses], len(d))], sample)
    summary = json.loads(summary_path.read_text())
    assert (summary["utterances"], summary["words"], summary["errors"], summary["sub"], summary["del"],
            summary["ins"]) == (3, 6, 2, 1, 1, 0)
    assert summary["wer"] == pytest.approx(100 * 2 / 6) and summary["decode_seconds"] > 0
    assert summary["audio_seconds"] == pytest.approx(3 * 50 * 0.01)  # 10 ms filterbank frames
    assert [u["id"] for u in summary["per_utterance"]] == [2, 4, 9]
    assert summary["per_utterance"][2] == {"id": 9, "reference": "A DOG RAN", "hypothesis": "A DOG", "words": 3,
                                           "sub": 0, "del": 1, "ins": 0}
    assert summary["decoder"]["ctc_decoder"] == "greedy" and summary["decoder"]["beam"] == 3
    assert summary["decoder"]["unk_score"] == "-inf"
