"""Offline decoding of an encoded split (LM tuning, decoding benchmark): any search over the same emissions,
timed apart from the encoder, scored like everything else."""
import torch
from fairseq.data import Dictionary

from fairseq_kd.decoding.evaluation import EncodedBatch, EncodedSplit, decoder_search, greedy_search, search_split
from fairseq_kd.decoding.greedy import CtcGreedyDecoder


def letters():
    d = Dictionary()
    for symbol in "ABCDEFGHIJKLMNOPQRSTUVWXYZ'|":
        d.add_symbol(symbol)
    return d


def emissions(d, texts):
    """``B x T x V`` log-probs spelling each text (letters, ``|`` between words), a blank after every unit."""
    paths = [[d.index(c) for c in text.replace(" ", "|") + "|"] for text in texts]
    log_probs = torch.full((len(texts), 2 * max(map(len, paths)), len(d)), -10.0)
    log_probs[:, :, d.bos()] = 0.0
    for b, path in enumerate(paths):
        for j, unit in enumerate(path):
            log_probs[b, 2 * j, unit], log_probs[b, 2 * j, d.bos()] = 0.0, -10.0
    return log_probs, torch.tensor([2 * len(p) for p in paths])


def test_greedy_and_a_decoder_give_the_same_hypotheses_and_errors():
    d = letters()
    batches = []
    for ids, hypotheses, references in [([0, 1], ["THE CAT", "A DOG"], ["THE HAT", "A DOG RAN"]),
                                        ([2], ["HI"], ["HI"])]:
        log_probs, lengths = emissions(d, hypotheses)
        batches.append(EncodedBatch(ids, log_probs, lengths, references, 1.0))
    encoded = EncodedSplit(batches, 0.1, 2.0, 3)
    seconds, errors = search_split(greedy_search(d.bos()), encoded, d, repeats=2)
    assert seconds >= 0 and (errors.substitutions, errors.deletions, errors.insertions, errors.words) == (1, 1, 0, 6)
    assert search_split(decoder_search(CtcGreedyDecoder(d, d.bos())), encoded, d)[1] == errors
