"""What a command imports, read from ``sys.modules`` in a fresh interpreter.

``vqvae --help`` imports no model code (not even torch: the parser is built from the families' command modules,
which hold argparse only), and ``vqvae compress`` imports nothing of the audio or text-to-image families.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.helpers import tiny_codec_run

REPO = Path(__file__).resolve().parents[1]
FAMILIES = ("image", "scoring", "priors", "audio", "text2image", "codec", "serve", "baselines", "world")


def _modules_after(argv: list[str], cwd: Path) -> list[str]:
    """The modules loaded after running ``vqvae ARGV`` in a fresh interpreter (its exit code must be 0)."""
    code = ("import json, sys\nfrom vqvae.cli import main\n"
            f"try:\n    rc = main({argv!r})\nexcept SystemExit as e:\n    rc = e.code\n"
            "print('MODULES=' + json.dumps([rc, sorted(sys.modules)]))\n")
    p = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=300,
                       env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "HOME": str(cwd)})
    line = next(ln for ln in p.stdout.splitlines() if ln.startswith("MODULES="))
    rc, modules = json.loads(line[len("MODULES="):])
    assert rc == 0, p.stderr[-2000:]
    return modules


def test_help_imports_no_model_code(tmp_path):
    mods = _modules_after(["--help"], tmp_path)
    ours = [m for m in mods if m.startswith("vqvae")]
    light = {"vqvae", "vqvae.cli", "vqvae.registry", "vqvae.core", "vqvae.core.commands", "vqvae.core.config", "vqvae.core.errors",
             "vqvae.codec.defaults", "vqvae.data", "vqvae.data.roots", "vqvae.core.zoo"} | {f"vqvae.{f}" for f in FAMILIES} | {f"vqvae.{f}.commands" for f in FAMILIES}
    assert sorted(set(ours) - light) == []
    assert "torch" not in mods  # so no model, net or quantizer either


@pytest.fixture(scope="module")
def codec_run(tmp_path_factory):
    """A tiny residual tokenizer and the tiled prior over its codes: a codec model given as a prior run."""
    root = tiny_codec_run(tmp_path_factory.mktemp("codec"))
    Image.fromarray(np.load(root / "data" / "blobs_test.npy")[0].transpose(1, 2, 0)).save(root / "photo.png")
    return root


def test_compress_imports_neither_audio_nor_text_to_image_code(codec_run):
    mods = _modules_after(["compress", "photo.png", "--model", "prior", "-o", "photo.vqz", "--refine", "1", "--no-progress"], codec_run)
    assert (codec_run / "photo.vqz").is_file()
    assert [m for m in mods if m.startswith(("vqvae.audio", "vqvae.text2image"))] == []
    assert "vqvae.codec.codec" in mods and "vqvae.image.vqvae" in mods and "vqvae.priors.transformer" in mods  # what it did need
    mods = _modules_after(["decompress", "photo.vqz", "--model", "prior", "-o", "back.png"], codec_run)
    assert [m for m in mods if m.startswith(("vqvae.audio", "vqvae.text2image"))] == []
