"""The zoo: models shipped in the package, resolved by ``zoo:NAME[/PART]``, checked by SHA-256 on load."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from vqvae.core import checkpoint, zoo
from vqvae.core.zoo_build import export
from vqvae.priors import codes

RUNS = Path(__file__).resolve().parents[1] / "fixtures" / "runs"


@pytest.fixture()
def root(tmp_path):
    """A zoo with one model: the recorded GPT prior over the recorded tokenizer, the prior stored in fp16."""
    card = tmp_path / "card.md"
    card.write_text("# a card\n")
    r = tmp_path / "zoo"
    export("tiny", {"prior": RUNS / "gpt", "tokenizer": RUNS / "tok"}, "prior", "a tiny prior", "blobs",
           {"bits/code": 1.0}, ["vqvae sample zoo:tiny"], ("prior",), card, root=r)
    return r


def test_export_writes_the_runs_the_card_and_each_files_sha256(root):
    m = zoo.manifest("tiny", root)
    assert m["main"] == "prior" and set(m["parts"]) == {"prior", "tokenizer"}
    assert set(m["files"]) == {"prior/config.json", "prior/model.safetensors", "tokenizer/config.json", "tokenizer/model.safetensors"}
    assert (root / "tiny" / zoo.CARD).read_text() == "# a card\n"
    assert json.loads((root / "tiny/prior/config.json").read_text())["tokenizer"]["path"] == "../tokenizer"
    assert zoo.names(root) == ["tiny"] and zoo.listing(root)[0]["headline"] == {"bits/code": 1.0}


def test_zoo_names_resolve_to_runs_that_load(root):
    assert zoo.resolve("zoo:tiny", root) == root / "tiny" / "prior"
    assert zoo.resolve("zoo:tiny/tokenizer", root) == root / "tiny" / "tokenizer"
    assert zoo.resolve("runs/x", root) == Path("runs/x")  # anything else is a path
    cfg, prior, tok_cfg, tok = codes.load_prior(zoo.resolve("zoo:tiny", root))  # the relative tokenizer, fingerprint checked
    assert prior.wte.weight.dtype == torch.float32  # fp16 on disk, the model's own dtype once loaded


def test_fp16_storage_keeps_the_priors_likelihoods(root):
    _, ref = checkpoint.load_run(RUNS / "gpt")
    _, half = checkpoint.load_run(root / "tiny" / "prior")
    x = torch.randint(0, ref.config.codebook_size, (4, ref.config.height, ref.config.width))
    y = torch.arange(4) % max(1, ref.config.num_classes)
    a, b = ref(x, y).nll_bits, half(x, y).nll_bits
    assert torch.allclose(a, b, rtol=2e-3, atol=1e-2)
    assert (root / "tiny/prior/model.safetensors").stat().st_size < 0.6 * (RUNS / "gpt/model.safetensors").stat().st_size


@pytest.mark.parametrize("damage", ["flip", "truncate", "foreign", "missing"])
def test_a_corrupt_or_foreign_file_is_a_one_line_error(root, damage):
    d = root / "tiny"
    weights = d / "tokenizer" / "model.safetensors"
    if damage == "flip":
        b = bytearray(weights.read_bytes())
        b[len(b) // 2] ^= 1
        weights.write_bytes(bytes(b))
    elif damage == "truncate":
        weights.write_bytes(weights.read_bytes()[:-10])
    elif damage == "foreign":
        shutil.copyfile(RUNS / "clf" / "model.safetensors", d / "prior" / "extra.safetensors")
    else:
        weights.unlink()
    with pytest.raises(zoo.ZooError) as e:
        zoo.resolve("zoo:tiny/prior", root)
    msg = str(e.value)
    assert "\n" not in msg and "tiny" in msg
    assert {"flip": "corrupt", "truncate": "corrupt", "foreign": "not one of its shipped files", "missing": "missing"}[damage] in msg


def test_unknown_models_and_parts_are_named(root):
    with pytest.raises(zoo.ZooError, match="no zoo model 'nope'; the zoo has: tiny"):
        zoo.resolve("zoo:nope", root)
    with pytest.raises(zoo.ZooError, match="no part 'decoder'; its parts: prior, tokenizer"):
        zoo.resolve("zoo:tiny/decoder", root)


def test_a_run_knows_the_zoo_model_it_belongs_to_and_its_sampling(root, tmp_path):
    """``zoo.owner``: how ``vqvae generate zoo:NAME`` finds the settings the card measured (the manifest's sampling)."""
    name, m = zoo.owner(zoo.resolve("zoo:tiny/tokenizer", root), root)
    assert name == "tiny" and "sampling" not in m
    assert zoo.owner(RUNS / "gpt", root) is None and zoo.owner(tmp_path, root) is None
    export("tuned", {"prior": RUNS / "gpt", "tokenizer": RUNS / "tok"}, "prior", "s", "d", root=root,
           sampling={"temperature": 0.8, "clip": "tokenizer"})
    assert zoo.owner(root / "tuned" / "prior", root)[1]["sampling"] == {"temperature": 0.8, "clip": "tokenizer"}
    with pytest.raises(zoo.ZooError, match="sampling's clip 'clip' is not one of the parts prior, tokenizer"):
        export("bad", {"prior": RUNS / "gpt", "tokenizer": RUNS / "tok"}, "prior", "s", "d", root=root, sampling={"clip": "clip"})


def test_a_prior_exported_without_its_tokenizer_is_refused(tmp_path):
    with pytest.raises(zoo.ZooError, match="export that tokenizer as a part too"):
        export("lonely", {"prior": RUNS / "gpt"}, "prior", "s", "d", root=tmp_path)


def test_the_shipped_zoo_is_intact():
    """Every model that ships resolves, every part loads, and the zoo stays within its budget (each file <= 12 MB,
    all <= 40 MB)."""
    total = 0
    for name in zoo.names():
        m = zoo.manifest(name)
        for part in m["parts"]:
            checkpoint.load_run(f"zoo:{name}/{part}")
        assert (zoo.ZOO / name / zoo.CARD).is_file()
        for rel in m["files"]:
            size = (zoo.ZOO / name / rel).stat().st_size
            assert size <= 12_000_000, rel
            total += size
    assert total <= 40_000_000


def test_a_shipped_run_caches_outside_the_package(root, tmp_path):
    assert zoo.cache_dir(root / "tiny" / "tokenizer", root) == zoo.CACHE / "tiny" / "tokenizer"
    assert zoo.cache_dir(tmp_path / "runs" / "tok", root) == (tmp_path / "runs" / "tok").resolve()
