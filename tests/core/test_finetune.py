"""Fine-tuning: train.init_from starts a run from another run's weights; train.freeze keeps parts fixed.

The codec uses both to fine-tune its decoder on fixed codes: the encoder and the codebooks must
stay bit-identical (so the tokenizer's fingerprint, its codes and the prior trained on them stay
valid) while the decoder trains, and the residual quantizer's stage dropout must still apply.
"""

from __future__ import annotations

import pytest
import torch

from tests.helpers import image_set, tiny_config
from vqvae.core import checkpoint
from vqvae.priors import codes
from vqvae.core.errors import VQVAEError
from vqvae.core.train import Trainer


def _cfg(**train):
    cfg = tiny_config(eval_every=0, ckpt_every=1000, **train)
    cfg.model.num_codebooks, cfg.model.codebook_layout, cfg.model.quantizer_dropout = 2, "residual", 1.0
    return cfg


def _fit(cfg, run_dir) -> Trainer:
    tr = Trainer(cfg, run_dir, image_set(64), image_set(16, seed=1), progress=False)
    tr.fit()
    return tr


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    run = tmp_path_factory.mktemp("ft") / "base"
    _fit(_cfg(steps=4), run)
    return run


def test_init_from_starts_from_the_source_weights_and_buffers(base, tmp_path):
    tr = Trainer(_cfg(steps=1, init_from=str(base)), tmp_path / "b", image_set(64), image_set(16, seed=1), progress=False)
    _, src = checkpoint.load_run(base)
    mine = tr.model.state_dict()
    for k, v in src.state_dict().items():
        assert torch.equal(mine[k], v), k  # EMA statistics and k-means flags included


def test_frozen_encoder_and_codebooks_stay_bit_identical_while_the_decoder_trains(base, tmp_path):
    run = tmp_path / "ft"
    tr = _fit(_cfg(steps=5, init_from=str(base), freeze="encoder,quantizer", lr=1e-2), run)
    _, src = checkpoint.load_run(base)
    _, out = checkpoint.load_run(run)
    before, after = src.state_dict(), out.state_dict()
    for k in before:
        same = torch.equal(before[k], after[k])
        assert same != k.startswith("decoder."), k  # everything but the decoder unchanged; every decoder tensor moved
    # so the tokenizer's fingerprint (model config + codebooks), and with it the prior, stay valid
    assert codes.fingerprint(*codes.load_tokenizer(run)[:2]) == codes.fingerprint(*codes.load_tokenizer(base)[:2])
    x = image_set(8, seed=3).images
    assert torch.equal(src.encode(x), out.encode(x))
    # the optimizer only holds the trainable parameters
    held = {id(p) for g in tr.optimizer.param_groups for p in g["params"]}
    assert held == {id(p) for p in tr.model.decoder.parameters()}


def test_resuming_a_fine_tune_needs_no_source_run(base, tmp_path):
    import shutil

    src = tmp_path / "src"
    shutil.copytree(base, src)
    cfg = _cfg(steps=2, init_from=str(src), freeze="encoder,quantizer")
    _fit(cfg, tmp_path / "r")
    shutil.rmtree(src)  # the source is gone: resuming reads the run's own state
    tr = Trainer(_cfg(steps=3, init_from=str(src), freeze="encoder,quantizer"), tmp_path / "r", image_set(64),
                 image_set(16, seed=1), resume=True, progress=False)
    assert tr.step == 2
    tr.fit()


def test_a_frozen_residual_quantizer_still_drops_stages(base, tmp_path):
    tr = Trainer(_cfg(steps=1, init_from=str(base), freeze="encoder,quantizer"), tmp_path / "d", image_set(64),
                 image_set(16, seed=1), progress=False)
    tr.train_step(*tr.batch(0))
    q = tr.model.quantizer
    assert q.training and not any(s.training for s in q.stages)  # codebooks in eval: no EMA, k-means, restarts
    z = torch.randn(256, q.embedding_dim, 2, 2)
    kept = q._keep(z).sum(1)  # quantizer_dropout = 1: every sample keeps U{1, 2} stages
    assert set(kept.tolist()) == {1.0, 2.0}


def test_freeze_and_init_from_errors(base, tmp_path):
    with pytest.raises(VQVAEError, match="no part 'decodr'.*encoder.*decoder.*quantizer"):
        Trainer(_cfg(steps=1, freeze="decodr"), tmp_path / "e1", image_set(64), image_set(16), progress=False)
    with pytest.raises(VQVAEError, match="nothing is left to train"):
        Trainer(_cfg(steps=1, freeze="encoder,decoder,quantizer"), tmp_path / "e2", image_set(64), image_set(16), progress=False)
    other = _cfg(steps=1, init_from=str(base))
    other.model.codebook_size = 16
    with pytest.raises(VQVAEError, match="model config differs.*codebook_size"):
        Trainer(other, tmp_path / "e3", image_set(64), image_set(16), progress=False)
    with pytest.raises(VQVAEError, match="missing does not exist"):
        Trainer(_cfg(steps=1, init_from=str(tmp_path / "missing")), tmp_path / "e4", image_set(64), image_set(16), progress=False)


def test_codec_with_a_fine_tuned_decoder_from_the_cli(tmp_path):
    """Tokenizer -> prior -> decoder fine-tuned on fixed codes -> codec-export --tokenizer: same codes, another model."""
    from tests.helpers import write_npy_data
    from vqvae.cli import main
    from vqvae.codec import available_models, load_codec, model_info, unpack
    from vqvae.codec.codec import Codec
    from vqvae.core import zoo

    data = write_npy_data(tmp_path / "data", size=32, channels=3)
    common = ["--config", "tiny", "--data", data, "--no-progress", "--train.eval_images=8", "--model.codebook_size=16",
              "--model.num_codebooks=2", "--model.codebook_layout=residual", "--model.quantizer_dropout=0.5"]
    tok, ft, prior = tmp_path / "tok", tmp_path / "ft", tmp_path / "prior"
    assert main(["train", *common, "--out", str(tok), "--steps", "6"]) == 0
    assert main(["prior", "train", "--tokenizer", str(tok), "--arch", "transformer", "--config", "prior-codec", "--tile", "4",
                 "--out", str(prior), "--steps", "3", "--model.n_layer=1", "--model.n_embd=16", "--model.n_head=2",
                 "--no-progress", "--train.eval_images=8", "--train.batch_size=8"]) == 0
    assert main(["train", *common, "--out", str(ft), "--steps", "4", f"--train.init_from={tok}",
                 "--train.freeze=encoder,quantizer"]) == 0
    root, card = tmp_path / "zoo", tmp_path / "card.md"
    card.write_text("# m-ft\n")
    assert main(["codec-export", str(prior), "--name", "m-ft", "--root", str(root), "--tokenizer", str(ft), "--card", str(card),
                 "--default-quality", "1", "--data", "random crops", "--headline", '{"bpp": 1.5}']) == 0
    out = root / "m-ft"
    assert zoo.manifest("m-ft", root)["headline"] == {"bpp": 1.5} and available_models(root) == ["m-ft"]
    assert set(zoo.manifest("m-ft", root)["files"]) == {"codec.json", "tokenizer/config.json", "tokenizer/model.safetensors",
                                                         "prior/config.json", "prior/model.safetensors"}
    base, tuned = Codec.from_run(prior), load_codec("zoo:m-ft", root)  # a shipped codec: by name, files checked
    assert tuned.default_quality == 1 and tuned.fingerprint.hex() == model_info("m-ft", root)["fingerprint"]
    x = torch.randint(0, 256, (3, 20, 24), dtype=torch.uint8)
    a, b = unpack(base.compress(x, 2, refine=0)[0])[0], unpack(tuned.compress(x, 2, refine=0)[0])[0]
    assert a.code_crc == b.code_crc  # the same codes ...
    assert base.fingerprint != tuned.fingerprint  # ... but another decoder: files name the model that decodes them
    other = tmp_path / "other"  # a tokenizer with other codebooks is refused
    assert main(["train", *common, "--out", str(other), "--steps", "2", "--train.seed=1"]) == 0
    with pytest.raises(VQVAEError, match="not the one prior"):
        Codec.from_run(prior, tokenizer=other)
