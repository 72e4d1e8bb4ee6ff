#!/usr/bin/env python3
"""The speaker (TTS voice) of each utterance of a split of scripts/make_synthetic_corpus.py's corpus, for results
whose corpus is gone: writes the speakers table that collect_results.py --previous DIR reads from
DIR/speakers/<split>.tsv (``id speaker``; collect_results.py itself takes the speakers from the manifest's file
names when the corpus is there).

make_synthetic_corpus.py speaks sentence i of a split with ``voices[i % len(voices)]`` and writes the manifest
sorted by utterance name ``<split>-<voice>-<i:06d>`` (the voice with ``_`` for ``:`` and ``+``); fairseq's
utterance id j is the j-th name of that order. So a split's speakers follow from its size and voices: the
unseen voices for test_unseen (examples/kd/run.sh's --unseen-voices), --voices for test, valid and the others.

Check: test_unseen and test_noisy_* speak the test sentences, so with --test-table each of their utterances must
have the reference of the test utterance with its sentence index under test's own voices (--test-voices); one
that does not stops the script, and nothing is written.

  python scripts/synthetic_speakers.py --split test_unseen \
      --voices espeak:en-us+f2,festival:cmu_us_slt_arctic_hts \
      --table docs/results/evidence/per_utterance/xs_ctc/seed1/greedy/test_unseen.tsv \
      --test-table docs/results/evidence/per_utterance/xs_ctc/seed1/greedy/test.tsv \
      --out docs/results/evidence/speakers/test_unseen.tsv
"""
import argparse

from make_synthetic_corpus import DEFAULT_VOICES

from fairseq_kd.comparison import read_utterance_table, speakers_table
from fairseq_kd.io_utils import atomic_write


def voice_name(voice):
    """A voice as make_synthetic_corpus.py writes it into utterance names (``espeak:en-us+f2``:
    ``espeak_en-us_f2``)."""
    return voice.replace(":", "_").replace("+", "_")


def sentence_order(split, voices, num_utterances):
    """The sentence index of each utterance id: ids follow the sorted names ``<split>-<voice>-<index:06d>``."""
    return sorted(range(num_utterances),
                  key=lambda i: f"{split}-{voice_name(voices[i % len(voices)])}-{i:06d}")


def split_speakers(split, voices, num_utterances):
    """``{utterance id: voice name}`` of a split of ``num_utterances`` spoken by ``voices``."""
    return {utt_id: voice_name(voices[i % len(voices)])
            for utt_id, i in enumerate(sentence_order(split, voices, num_utterances))}


def check_against_test(table, split, voices, test_table, test_voices):
    """Raise SystemExit unless every utterance of ``table`` (a per-utterance table of ``split``) has the reference of
    the test utterance with the same sentence index."""
    records, test_records = read_utterance_table(table), read_utterance_table(test_table)
    if len(records) != len(test_records):
        raise SystemExit(f"{table}: {len(records)} utterances, {test_table} {len(test_records)}: not the same "
                         "sentences")
    test_reference = {i: test_records[utt_id]["reference"]
                      for utt_id, i in enumerate(sentence_order("test", test_voices, len(test_records)))}
    for utt_id, i in enumerate(sentence_order(split, voices, len(records))):
        if records[utt_id]["reference"] != test_reference[i]:
            raise SystemExit(f"{table}: utterance {utt_id} reads {records[utt_id]['reference']!r}, but sentence {i} "
                             f"of {test_table} is {test_reference[i]!r}: not make_synthetic_corpus.py's order for "
                             "these voices")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", required=True, help="e.g. test_unseen")
    parser.add_argument("--voices", required=True, help="the split's voices, comma-separated, in the corpus's order")
    parser.add_argument("--table", required=True,
                        help="a per-utterance table of the split (collect_results.py --per-utterance-dir): its size")
    parser.add_argument("--test-table", help="a per-utterance table of test: check the order against it (for "
                        "test_unseen, test_noisy_*)")
    parser.add_argument("--test-voices", default=DEFAULT_VOICES, help="test's voices (make_synthetic_corpus.py's)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    voices = args.voices.split(",")
    if args.test_table:
        check_against_test(args.table, args.split, voices, args.test_table, args.test_voices.split(","))
    speakers = split_speakers(args.split, voices, len(read_utterance_table(args.table)))
    with atomic_write(args.out) as f:
        f.write(speakers_table(speakers))
    print(f"{args.out}: {len(speakers)} utterances, " + ", ".join(
        f"{voice} {list(speakers.values()).count(voice)}" for voice in sorted(set(speakers.values()))))


if __name__ == "__main__":
    main()
