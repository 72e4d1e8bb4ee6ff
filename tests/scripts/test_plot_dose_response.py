"""scripts/plot_dose_response.py: which systems become which points (the family named, the alpha = 0 system on
every line, other temperatures left out) and the figure written; on small results.csv / wer_intervals.csv files."""
import csv
import importlib.util
import os

import pytest

from conftest import ROOT

SYSTEMS = {  # system: (alpha, beta, temperature, valid WER)
    "xs_interctc": (0.0, "", "", 27.0),
    "kd_a3": (0.3, 1.0, 1.0, 27.1), "kd_a3_beta0": (0.3, 0.0, "", 26.7),
    "kd_a5": (0.5, 1.0, 1.0, 26.3), "kd_a5_beta0": (0.5, 0.0, "", 26.7),
    "kd_a5_t3": (0.5, 1.0, 3.0, 25.9), "kd_a5_beta03": (0.5, 0.3, 1.0, 26.0),
    "xs_ctc": (0.0, "", "", 30.4),
}


@pytest.fixture(scope="module")
def module():
    spec = importlib.util.spec_from_file_location("plot_dose_response",
                                                  os.path.join(ROOT, "scripts", "plot_dose_response.py"))
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return loaded


def write_results(directory):
    with open(directory / "results.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["system", "seed", "alpha", "beta", "temperature", "method", "subset", "wer"])
        for system, (alpha, beta, temperature, wer) in SYSTEMS.items():
            for subset in ("valid", "test"):
                writer.writerow([system, 1, alpha, beta, temperature, "greedy", subset, wer])
    with open(directory / "wer_intervals.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["system", "method", "subset", "seeds", "wer", "ci_low", "ci_high", "df", "interval_over"])
        for system, (_, _, _, wer) in SYSTEMS.items():
            writer.writerow([system, "greedy", "valid", 1, wer, wer - 2, wer + 2, 40, "utterances + seeds"])


def test_points_of_the_named_family_by_beta(module, tmp_path):
    write_results(tmp_path)
    family = ["xs_interctc", "kd_a3", "kd_a3_beta0", "kd_a5", "kd_a5_beta0", "kd_a5_t3", "kd_a5_beta03"]
    lines = module.dose_points(str(tmp_path), family, "valid")
    assert {beta: [(p[0], p[1], p[-1]) for p in points] for beta, points in lines.items()} == {
        0.0: [(0.0, 27.0, "xs_interctc"), (0.3, 26.7, "kd_a3_beta0"), (0.5, 26.7, "kd_a5_beta0")],
        0.3: [(0.0, 27.0, "xs_interctc"), (0.5, 26.0, "kd_a5_beta03")],
        1.0: [(0.0, 27.0, "xs_interctc"), (0.3, 27.1, "kd_a3"), (0.5, 26.3, "kd_a5")],  # T = 3 left out
    }
    assert lines[1.0][2][2:5] == (24.3, 28.3, 1)  # interval and seeds from wer_intervals.csv
    out = tmp_path / "dose.png"
    module.plot(lines, "valid", "greedy", str(out))
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(SystemExit, match="2 systems without the decoder"):
        module.dose_points(str(tmp_path), family + ["xs_ctc"], "valid")
    with pytest.raises(SystemExit, match="no greedy WER on test of xs_interctc"):
        module.dose_points(str(tmp_path), family, "test")
