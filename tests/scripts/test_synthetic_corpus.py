"""The TTS corpus builder's harder test condition: test sentences mixed with generated pink noise at given SNRs."""
import os
import sys

import numpy as np
import pytest
import soundfile as sf

from conftest import ROOT, SENTENCES, run
from fairseq_kd.data.manifest import read_manifest
from fairseq_kd.data.text import normalize_transcript

pytestmark = pytest.mark.cli


def test_noisy_and_out_of_domain_test_splits(tmp_path):
    """test_noisy_<SNR>db / valid_noisy_<SNR>db: the test / valid utterances with pink noise at each SNR;
    test_ood: sentences of another text, none of which is in the main text."""
    out = tmp_path / "corpus"
    with open(SENTENCES, encoding="utf-8") as f:
        main_sentences = [line.strip() for line in f][:40]  # long ones too (--max-words 8 skips them for test)
    foreign = ["The cat sat on the warm mat.", "A vivid mind characterizes you.", "Drain the moat at once."]
    ood_text = tmp_path / "ood.txt"
    ood_text.write_text("\n".join(main_sentences[:20] + foreign + main_sentences[20:]) + "\n")
    run([sys.executable, os.path.join(ROOT, "scripts", "make_synthetic_corpus.py"), "--text", SENTENCES,
         "--out", str(out), "--num-train", "2", "--num-valid", "1", "--num-test", "3", "--voices",
         "espeak:en-us+m3,flite:kal16", "--max-words", "8", "--test-noise-snrs", "10,5",
         "--valid-noise-snrs", "20", "--jobs", "1",
         "--ood-text", str(ood_text), "--num-ood", "3"])
    for clean_split, snr in (("test", 10), ("test", 5), ("valid", 20)):
        clean_root, clean_entries = read_manifest(str(out / f"{clean_split}.tsv"))
        clean = [sf.read(os.path.join(clean_root, path), dtype="float64")[0] for path, _, _ in clean_entries]
        split = f"{clean_split}_noisy_{snr}db"
        assert (out / f"{split}.wrd").read_text() == (out / f"{clean_split}.wrd").read_text()
        assert (out / f"{split}.ltr").read_text() == (out / f"{clean_split}.ltr").read_text()
        root, entries = read_manifest(str(out / f"{split}.tsv"))
        assert [n for _, n, _ in entries] == [n for _, n, _ in clean_entries]  # same audio, same lengths
        for (path, _, _), speech in zip(entries, clean):
            noise = sf.read(os.path.join(root, path), dtype="float64")[0] - speech
            measured = 10 * np.log10(np.mean(speech ** 2) / np.mean(noise ** 2))
            assert abs(measured - snr) < 0.3, (split, path, measured)
            power = np.abs(np.fft.rfft(noise)) ** 2
            hz = np.fft.rfftfreq(len(noise), 1 / 16000)
            low, high = power[(hz > 250) & (hz < 500)].mean(), power[(hz > 4000) & (hz < 8000)].mean()
            assert low > 5 * high  # pink: power per Hz falls as 1/f (about 12x between these bands); white: 1x
    ood = (out / "test_ood.wrd").read_text().splitlines()
    assert sorted(ood) == sorted(normalize_transcript(s) for s in foreign)
    assert len(read_manifest(str(out / "test_ood.tsv"))[1]) == 3
