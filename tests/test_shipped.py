"""The models that ship (vqvae/zoo), used end to end as a new user would, right after install.

Each model's card gives the figures checked here; a model that is not in this checkout is skipped with the reason.
"""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from vqvae.cli import main
from vqvae.core import checkpoint, zoo
from vqvae.core.task import tokenizer_task
from vqvae.priors import codes
from vqvae.scoring.scores import label_accuracy

SHIPPED = set(zoo.names())


def needs(name: str):
    return pytest.mark.skipif(name not in SHIPPED, reason=f"zoo:{name} does not ship in this checkout")


def test_vqvae_zoo_lists_every_shipped_model(capsys):
    assert main(["zoo", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == sorted(SHIPPED)
    assert all(r["size_mb"] > 0 and r["data"] and r["headline"] for r in rows)


@needs("fashion-mnist")
def test_fashion_mnist_samples_are_recognised_by_the_shipped_classifier(tmp_path):
    """``vqvae sample zoo:fashion-mnist --label 3`` draws a grid; the shipped classifier reads 10 samples of each class
    as their class about as often as the card says (its figure is over 1000 samples: a margin for 100)."""
    headline = zoo.manifest("fashion-mnist")["headline"]
    assert main(["sample", "zoo:fashion-mnist", "--label", "3", "-n", "16", "-o", str(tmp_path / "dresses.png")]) == 0
    with Image.open(tmp_path / "dresses.png") as im:
        assert im.size == ((8 * 30 + 2) * 2, (2 * 30 + 2) * 2)  # 16 samples of 28 px, 8 a row, scaled x2
    cfg, prior, tok_cfg, tok = codes.load_prior(zoo.resolve("zoo:fashion-mnist"))
    labels = torch.arange(10).repeat_interleave(10)
    z = prior.sample(100, labels, generator=torch.Generator().manual_seed(0))
    images = tokenizer_task(tok_cfg.arch, "zoo:fashion-mnist/tokenizer").decode(tok, z)
    _, clf = checkpoint.load_run("zoo:fashion-mnist/classifier")
    acc = label_accuracy(clf, images, labels)
    assert acc >= headline["sample accuracy"] - 0.12, acc


def test_an_unknown_zoo_name_is_a_one_line_error(capsys):
    assert main(["eval", "zoo:no-such-model"]) == 2
    err = capsys.readouterr().err
    assert "no zoo model 'no-such-model'; the zoo has: " in err and err.count("\n") == 1
