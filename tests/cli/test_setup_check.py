"""scripts/setup_env.sh --check: every system tool the commands use is verified up front, and what is missing
is listed in one message with the command that installs it."""
import os
import shutil
import subprocess

import pytest

from conftest import ROOT

pytestmark = pytest.mark.cli

SETUP = os.path.join(ROOT, "scripts", "setup_env.sh")


def check(path_dirs):
    return subprocess.run(["bash", SETUP, "--check"], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PATH": os.pathsep.join(path_dirs)})


def test_check_passes_where_the_set_up_ran():
    proc = check(os.environ["PATH"].split(os.pathsep))
    assert proc.returncode == 0, proc.stderr


def test_missing_tools_are_listed_in_one_message_with_the_install_command(tmp_path):
    """Only the shell utilities on the PATH: every command-line tool of SYSTEM_NEEDS is reported at once."""
    for tool in ("bash", "cut", "sort", "tr", "dpkg-query"):
        if shutil.which(tool):
            os.symlink(shutil.which(tool), tmp_path / tool)
    proc = check([str(tmp_path)])
    assert proc.returncode == 1
    for tool, package in (("diatheke", "diatheke"), ("flite", "flite"), ("espeak-ng", "espeak-ng"), ("sox", "sox"),
                          ("festival", "festival"), ("cmake", "cmake")):
        assert f"  {tool} (apt package {package})" in proc.stderr, proc.stderr
    assert proc.stderr.count("missing system tools:") == 1
    assert "install them with: bash scripts/setup_env.sh" in proc.stderr
