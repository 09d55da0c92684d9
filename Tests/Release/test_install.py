"""`make install DESTDIR=... PREFIX=/usr`: both executables, their files and shell completions; the
installed CLI generates from the installed built-in model with no source tree in sight."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLI = ROOT / ".build" / "release" / "clipgen"

pytestmark = pytest.mark.skipif(not CLI.exists(), reason=f"{CLI} is not built (make build)")


def test_make_install_gives_a_working_installation(tmp_path):
    dest = tmp_path / "dest"
    r = subprocess.run(["make", "-C", str(ROOT), "install", f"DESTDIR={dest}", "PREFIX=/usr"],
                       capture_output=True, text=True, check=False, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    usr = dest / "usr"
    for exe in ("clipgen", "clipgen-studio"):
        assert os.access(usr / "bin" / exe, os.X_OK)
        assert (usr / "share/bash-completion/completions" / exe).read_text().startswith("#!/bin/bash")
        assert (usr / "share/zsh/site-functions" / f"_{exe}").exists()
        assert (usr / "share/fish/vendor_completions.d" / f"{exe}.fish").exists()
    share = usr / "share/clipgen"
    assert (share / "themes/default.theme").exists() and (share / "samples/styles.json").exists()
    assert (share / "samples/model/model.json").exists()
    # Far from the source tree: the installed CLI finds the installed model.
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "CLIPGEN_MODEL"}
    r = subprocess.run([str(usr / "bin/clipgen"), "generate", "a red circle", "--out", "out", "--quiet"],
                       cwd=work, capture_output=True, text=True, check=False, timeout=120, env=env)
    assert r.returncode == 0, r.stderr
    assert (work / "out/image-00.png").exists()
    r = subprocess.run([str(usr / "bin/clipgen-studio"), "--version"], capture_output=True, text=True,
                       check=False, timeout=30)
    assert r.returncode == 0 and r.stdout.strip()
