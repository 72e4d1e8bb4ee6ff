"""scripts/setup_env.sh --check: every system tool the commands use is verified up front, and what is missing
is listed in one message with the command that installs it."""
import os
import shutil
import subprocess

import pytest

from conftest import ROOT

pytestmark = pytest.mark.cli

SETUP = os.path.join(ROOT, "scripts", "setup_env.sh")


def check(path_dirs, *options):
    return subprocess.run(["bash", SETUP, "--check", *options], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PATH": os.pathsep.join(path_dirs)})


def shell_utilities_only(folder):
    for tool in ("bash", "cut", "sort", "tr", "dpkg-query"):
        if shutil.which(tool):
            os.symlink(shutil.which(tool), folder / tool)
    return [str(folder)]


def test_check_passes_where_the_set_up_ran():
    proc = check(os.environ["PATH"].split(os.pathsep))
    assert proc.returncode == 0, proc.stderr


def test_missing_tools_are_listed_in_one_message_with_the_install_command(tmp_path):
    """Only the shell utilities on the PATH: every command-line tool of SYSTEM_NEEDS is reported at once."""
    proc = check(shell_utilities_only(tmp_path))
    assert proc.returncode == 1
    for tool, package in (("diatheke", "diatheke"), ("flite", "flite"), ("espeak-ng", "espeak-ng"), ("sox", "sox"),
                          ("festival", "festival"), ("cmake", "cmake")):
        assert f"  {tool} (apt package {package})" in proc.stderr, proc.stderr
    assert proc.stderr.count("missing system tools (for all):") == 1
    assert "install them with: bash scripts/setup_env.sh --for all" in proc.stderr


def test_the_librispeech_preset_needs_no_tts_bible_or_fortune_tools(tmp_path):
    """Real data: the message names only the build tools, never a TTS voice, sox, diatheke or the fortunes."""
    path = shell_utilities_only(tmp_path)
    proc = check(path, "--for", "librispeech")
    assert proc.returncode == 1 and "  cmake (apt package cmake)" in proc.stderr, proc.stderr
    for tool in ("flite", "festival", "espeak-ng", "sox", "diatheke", "fortunes", "festvox"):
        assert tool not in proc.stderr, proc.stderr
    assert "setup_env.sh --for librispeech" in proc.stderr
    assert check(os.environ["PATH"].split(os.pathsep), "--for", "librispeech").returncode == 0
