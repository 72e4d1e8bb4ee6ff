"""CTC beam search (flashlight lexicon-free / lexicon + KenLM) on hand-built emissions, LM and lexicon checks."""
import json
import os
import sys

import pytest
import torch
from fairseq import tasks
from fairseq.data import Dictionary
from fairseq.dataclass.configs import GenerationConfig
from omegaconf import OmegaConf

from conftest import ROOT, run
from fairseq_kd.decoding.beam import CtcBeamDecoder
from fairseq_kd.decoding.beam_lm import CtcBeamLmDecoder, KenLmLexicon
from fairseq_kd.decoding.greedy import CtcGreedyDecoder, ctc_greedy_search
from fairseq_kd.errors import DataError

TOY_TEXT = ["THE CAT SAT ON THE MAT", "THE CAT SAT", "A CAT SAT ON A MAT", "THE HAT IS RED", "THE CAT RAN",
            "THE DOG IS RED"]
HELD_OUT = "THE CAT SAT ON A RED HAT"  # a "test" sentence: must not reach the LM text


def letter_dict():
    d = Dictionary()  # <s>=0 (the CTC blank), <pad>, </s>, <unk>
    for symbol in "|ABCDEHIMNORST":
        d.add_symbol(symbol)
    return d


@pytest.fixture(scope="module")
def toy_lm(tmp_path_factory):
    """3-gram + lexicon from TOY_TEXT (plus HELD_OUT, excluded) built by scripts/build_lm.py."""
    work = tmp_path_factory.mktemp("toy_lm")
    (work / "text.txt").write_text("\n".join(TOY_TEXT + [HELD_OUT, "and the cat sat on a red hat today"]) + "\n")
    (work / "test.wrd").write_text(HELD_OUT + "\n")
    letter_dict().save(str(work / "dict.ltr.txt"))
    run([sys.executable, os.path.join(ROOT, "scripts", "build_lm.py"), "--text", str(work / "text.txt"),
         "--dict", str(work / "dict.ltr.txt"), "--exclude", str(work / "test.wrd"), "--order", "3",
         "--memory", "32M", "--discount-fallback", "--out-dir", str(work / "lm")])
    return work / "lm"


def emissions_for(frames, d, peak=0.9):
    """``1 x T x V`` log-probs: each frame is a unit (``peak`` of the mass) or a dict {unit: prob}."""
    log_probs = torch.empty(1, len(frames), len(d))
    for t, frame in enumerate(frames):
        frame = frame if isinstance(frame, dict) else {frame: peak}
        probs = torch.full((len(d),), (1 - sum(frame.values())) / (len(d) - len(frame)))
        for unit, p in frame.items():
            probs[d.index(unit) if unit != "_" else d.bos()] = p
        log_probs[0, t] = probs.log()
    return log_probs


def spoken(words, d, ambiguous=None):
    """Frames for ``words``: every letter then a blank, ``|`` after each word; ``ambiguous`` = {frame: probs}."""
    frames = []
    for word in words.split():
        for letter in word + "|":
            frames += [letter, "_"]
    for t, probs in (ambiguous or {}).items():
        frames[t] = probs
    return emissions_for(frames, d)


def words_of(hypothesis, d):
    return d.string(hypothesis["tokens"]).replace(" ", "").replace("|", " ").strip()


@pytest.mark.parametrize("log_add", [False, True])
def test_beam_size_one_equals_greedy_on_a_padded_batch(log_add):
    d = letter_dict()
    torch.manual_seed(0)
    log_probs = (3 * torch.randn(5, 60, len(d))).log_softmax(-1)
    lengths = torch.tensor([60, 31, 1, 45, 2])
    log_probs[1, 31:, d.index("A")] = 10.0  # garbage in padding must not be read
    greedy = ctc_greedy_search(log_probs, lengths, d.bos())
    beam = CtcBeamDecoder(d, d.bos(), beam_size=1, log_add=log_add).decode(log_probs, lengths)
    assert len(beam) == 5
    for b in range(5):
        (hypothesis,) = beam[b]
        assert hypothesis["tokens"].tolist() == greedy.tokens[b].tolist()
        assert hypothesis["timesteps"].tolist() == greedy.frames[b].tolist()
        assert torch.allclose(hypothesis["positional_scores"], greedy.token_scores[b])
        assert hypothesis["score"].item() == pytest.approx(greedy.path_scores[b].item(), abs=1e-3)


def test_max_rule_beam_finds_the_best_path_at_any_width_and_log_add_searches_prefixes():
    d = letter_dict()
    torch.manual_seed(1)
    log_probs = (2 * torch.randn(6, 80, len(d))).log_softmax(-1)
    lengths = torch.full((6,), 80)
    greedy = [t.tolist() for t in ctc_greedy_search(log_probs, lengths, d.bos()).tokens]
    wide_max = CtcBeamDecoder(d, d.bos(), beam_size=50, nbest=3).decode(log_probs, lengths)
    assert [h[0]["tokens"].tolist() for h in wide_max] == greedy
    scores = [h["score"].item() for h in wide_max[0]]
    assert len(scores) == 3 and scores == sorted(scores, reverse=True)
    wide_sum = CtcBeamDecoder(d, d.bos(), beam_size=50, log_add=True).decode(log_probs, lengths)
    # summing the paths of a prefix can only raise its score above its best path's
    assert all(s[0]["score"] >= m[0]["score"] - 1e-4 for s, m in zip(wide_sum, wide_max))
    assert [h[0]["tokens"].tolist() for h in wide_sum] != greedy


def test_toy_lm_flips_an_ambiguous_word_towards_the_likely_sentence(toy_lm):
    d = letter_dict()
    # "THE ?AT SAT": frame 8 is the first letter of word 2, H slightly above C acoustically
    log_probs = spoken("THE HAT SAT", d, ambiguous={8: {"H": 0.5, "C": 0.4}})
    lengths = torch.tensor([log_probs.size(1)])
    greedy = CtcGreedyDecoder(d, d.bos()).generate([_Emissions(log_probs, lengths)], {"net_input": {}})
    assert words_of(greedy[0][0], d) == "THE HAT SAT"
    resources = KenLmLexicon(d, str(toy_lm / "lexicon.txt"), str(toy_lm / "lm.bin"))
    no_lm = CtcBeamLmDecoder(d, d.bos(), resources, beam_size=20, lm_weight=0.0).decode(log_probs, lengths)
    assert words_of(no_lm[0][0], d) == "THE HAT SAT" and no_lm[0][0]["words"] == ["THE", "HAT", "SAT"]
    fused = CtcBeamLmDecoder(d, d.bos(), resources, beam_size=20, lm_weight=2.0).decode(log_probs, lengths)
    assert words_of(fused[0][0], d) == "THE CAT SAT" and fused[0][0]["words"] == ["THE", "CAT", "SAT"]


def test_lexicon_decoder_only_produces_lexicon_words(toy_lm):
    d = letter_dict()
    log_probs = spoken("THE COT SAT", d)  # COT is not in the lexicon
    lengths = torch.tensor([log_probs.size(1)])
    greedy = CtcGreedyDecoder(d, d.bos()).generate([_Emissions(log_probs, lengths)], {"net_input": {}})
    assert words_of(greedy[0][0], d) == "THE COT SAT"
    resources = KenLmLexicon(d, str(toy_lm / "lexicon.txt"), str(toy_lm / "lm.bin"))
    out = CtcBeamLmDecoder(d, d.bos(), resources, beam_size=20, lm_weight=0.0).decode(log_probs, lengths)
    assert out[0][0]["words"] == ["THE", "CAT", "SAT"] and words_of(out[0][0], d) == "THE CAT SAT"


@pytest.mark.cli
def test_build_lm_excludes_test_sentences_and_spells_the_lm_vocabulary(toy_lm):
    text = (toy_lm / "lm_text.txt").read_text().splitlines()
    assert HELD_OUT not in text and not any(HELD_OUT in line for line in text)
    assert "THE CAT RAN" in text and not any("TODAY" in line for line in text)  # contained HELD_OUT
    lexicon = dict(line.split(" ", 1) for line in (toy_lm / "lexicon.txt").read_text().splitlines())
    assert lexicon["CAT"] == "C A T |" and lexicon["HAT"] == "H A T |"
    info = json.loads((toy_lm / "build_lm.json").read_text())
    assert info["excluded_lines"] == 2 and info["words_not_spellable"] == ["DOG"]  # G is not a unit
    assert "DOG" not in lexicon and len(lexicon) == info["lexicon_words"] == info["lm_vocabulary"] - 1


class _Emissions:
    def __init__(self, log_probs, lengths):
        self.log_probs, self.lengths = log_probs, lengths

    def ctc_emissions(self, **net_input):
        return self.log_probs, self.lengths


def lexicon_error(toy_lm, tmp_path, lexicon_text=None, lm_bytes=None, d=None):
    lexicon, lm = str(toy_lm / "lexicon.txt"), str(toy_lm / "lm.bin")
    if lexicon_text is not None:
        lexicon = str(tmp_path / "lexicon.txt")
        (tmp_path / "lexicon.txt").write_text(lexicon_text)
    if lm_bytes is not None:
        lm = str(tmp_path / "lm.bin")
        (tmp_path / "lm.bin").write_bytes(lm_bytes)
    with pytest.raises(DataError) as error:
        KenLmLexicon(d or letter_dict(), lexicon, lm)
    return str(error.value)


def test_missing_or_corrupt_lm_is_a_clear_error(toy_lm, tmp_path):
    message = lexicon_error(toy_lm, tmp_path, lm_bytes=b"this is not an n-gram model\n")
    assert str(tmp_path / "lm.bin") in message and "not a KenLM model" in message and "build_lm.py" in message
    truncated = (toy_lm / "lm.bin").read_bytes()[:200]
    message = lexicon_error(toy_lm, tmp_path, lm_bytes=truncated)
    assert str(tmp_path / "lm.bin") in message and "not a KenLM model" in message
    with pytest.raises(DataError, match="KenLM model .*nowhere.bin not found.*build_lm.py"):
        KenLmLexicon(letter_dict(), str(toy_lm / "lexicon.txt"), str(tmp_path / "nowhere.bin"))
    with pytest.raises(DataError, match="lexicon .*nowhere.txt not found.*build_lm.py"):
        KenLmLexicon(letter_dict(), str(tmp_path / "nowhere.txt"), str(toy_lm / "lm.bin"))


def test_lexicon_with_units_outside_the_model_dictionary_is_rejected(toy_lm, tmp_path):
    message = lexicon_error(toy_lm, tmp_path, "CAT C A T |\nDOG D O G |\ncat c a t |\nHAT <s> H A T |\nSAT\n")
    assert str(tmp_path / "lexicon.txt") in message and "4 bad lines" in message
    assert "line 2: 'DOG' is spelled with ['G']" in message and "line 3: 'cat'" in message
    assert "line 4: 'HAT' is spelled with ['<s>']" in message and "line 5: 'SAT' has no spelling" in message
    assert "build_lm.py --dict" in message
    assert "is empty" in lexicon_error(toy_lm, tmp_path, "\n")


def test_lm_built_for_another_vocabulary_is_rejected(toy_lm, tmp_path):
    lower_case = "".join(f"{w.lower()} {' '.join(w)} |\n" for w in ["THE", "CAT", "SAT", "HAT", "MAT", "RED"])
    message = lexicon_error(toy_lm, tmp_path, lower_case)
    assert "6 of the 6 words" in message and str(toy_lm / "lm.bin") in message
    assert "another letter case" in message and "another vocabulary" in message
    other_words = "".join(f"{w} {' '.join(w)} |\n" for w in ["DREAM", "STORM", "CRAB", "THE"])
    assert "3 of the 4 words" in lexicon_error(toy_lm, tmp_path, other_words)


def test_model_without_word_boundary_unit_is_rejected(toy_lm):
    pieces = Dictionary()
    for symbol in ["\u2581THE", "\u2581CAT"]:
        pieces.add_symbol(symbol)
    with pytest.raises(DataError, match="word-boundary unit '\\|'.*--ctc-decoder greedy or beam"):
        KenLmLexicon(pieces, str(toy_lm / "lexicon.txt"), str(toy_lm / "lm.bin"))


def test_emissions_must_match_the_dictionary():
    d = letter_dict()
    with pytest.raises(ValueError, match="V = 18"):
        CtcBeamDecoder(d, d.bos(), beam_size=2).decode(torch.zeros(1, 5, 7), torch.tensor([5]))


def test_task_builds_the_decoder_named_on_the_command_line(toy_lm, tmp_path):
    """The hydra / omegaconf path: task options from the (command-line) task config, beam + LM weight from
    the generation config that fairseq-generate passes to build_generator."""
    letter_dict().save(str(tmp_path / "dict.ltr.txt"))
    common = {"_name": "audio_kd", "data": str(tmp_path)}
    generation = GenerationConfig(beam=7, lm_weight=1.5, nbest=2)
    task = tasks.setup_task(OmegaConf.create(common))
    assert isinstance(task.build_generator([], generation), CtcGreedyDecoder)
    task = tasks.setup_task(OmegaConf.create({**common, "ctc_decoder": "beam"}))
    assert isinstance(task.build_generator([], generation), CtcBeamDecoder)
    task = tasks.setup_task(OmegaConf.create({**common, "ctc_decoder": "beam_lm"}))
    with pytest.raises(ValueError, match="needs --kenlm-model and --lexicon"):
        task.build_generator([], generation)
    task = tasks.setup_task(OmegaConf.create({**common, "ctc_decoder": "beam_lm", "word_score": -0.5,
                                              "kenlm_model": str(toy_lm / "lm.bin"),
                                              "lexicon": str(toy_lm / "lexicon.txt")}))
    decoder = task.build_generator([], generation)
    assert isinstance(decoder, CtcBeamLmDecoder) and decoder.nbest == 2
    log_probs = spoken("THE HAT SAT", letter_dict(), ambiguous={8: {"H": 0.5, "C": 0.4}})
    hypotheses = decoder.generate([_Emissions(log_probs, torch.tensor([log_probs.size(1)]))], {"net_input": {}})
    assert hypotheses[0][0]["words"] == ["THE", "CAT", "SAT"]  # lm_weight 1.5 reached the decoder
