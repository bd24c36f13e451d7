"""The second stage through the command line: vqvae train --tokenizer RUN --config doom-stage2, eval, reconstruct,
and the one-line refusals."""

from __future__ import annotations

import json

import pytest

from vqvae.cli import main

pytest.importorskip("vizdoom", reason="the doom frames need ViZDoom (pip install -e '.[world]')")

TOK = ["--config", "doom", "--data", "doom:2", "--model.hidden=8", "--model.res_hidden=4", "--model.codebook_size=16",
       "--model.embedding_dim=4", "--train.batch_size=8", "--steps", "3", "--train.eval_every=1000", "--train.eval_images=50", "--no-progress"]
S2 = ["--config", "doom-stage2", "--model.hidden=8", "--model.latent_dim=4", "--model.latent_codebook_size=8", "--model.embed_dim=4",
      "--model.cond_channels=4", "--model.pixel_channels=8", "--model.pixel_layers=2", "--train.batch_size=8", "--steps", "3",
      "--train.eval_images=50", "--no-progress"]


def test_second_stage_trains_on_a_tokenizers_codes_and_reconstructs_frames(tmp_path, capsys):
    root = ["--data-root", str(tmp_path / "data")]
    assert main(["train", *TOK, *root, "--out", str(tmp_path / "tok")]) == 0
    assert main(["train", "--tokenizer", str(tmp_path / "tok"), *S2, *root, "--out", str(tmp_path / "s2")]) == 0
    cfg = json.loads((tmp_path / "s2" / "config.json").read_text())
    assert cfg["arch"] == "stage2" and cfg["model"]["height"] == 21 and cfg["model"]["codebook_size"] == 16
    assert (tmp_path / "s2" / "reconstructions.png").is_file()
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "s2"), "--json", *root]) == 0
    m = json.loads(capsys.readouterr().out)
    assert m["maps"] == 200 and m["bits_per_code"] > 0 and "information_bits" in m
    from vqvae.data import doom
    from vqvae.data.images import write_image
    import torch

    frame = doom.episodes(2, "test", root=str(tmp_path / "data"), progress=False).frames[0, 7]
    write_image(tmp_path / "f.png", torch.from_numpy(frame))
    assert main(["reconstruct", str(tmp_path / "s2"), str(tmp_path / "f.png"), "-o", str(tmp_path / "rec"), "--seed", "1"]) == 0
    from PIL import Image

    assert Image.open(tmp_path / "rec" / "f.png").size == (84, 84)
    # what the probe reads from each kind of frame (bench_world.py's second-stage measure)
    assert main(["train", "--config", "doom-probe", "--data", "doom:2", "--data.image_size=32", "--model.channels=4", "--model.hidden=8",
                 "--steps", "2", "--train.eval_images=20", "--no-progress", *root, "--out", str(tmp_path / "probe")]) == 0
    from vqvae.core import checkpoint
    from vqvae.priors.codes import load_prior
    from vqvae.world.evaluation import stage2_probe

    _, s2, tok_cfg, tok = load_prior(tmp_path / "s2")
    _, probe = checkpoint.load_run(tmp_path / "probe")
    eps = doom.episodes(2, "test", root=str(tmp_path / "data"), progress=False)
    reads = stage2_probe(s2, tok_cfg, tok, probe, torch.from_numpy(eps.frames[0, :3]), torch.from_numpy(eps.variables[0, :3]))
    assert list(reads) == ["real frames", "first-stage reconstructions", "second-stage reconstructions", "second stage, random latents"]
    assert all(m["frames"] == 3 and m["position_error"] >= 0 for m in reads.values())
    # refusals, one line each (exit 2)
    for argv, msg in [
        (["reconstruct", str(tmp_path / "s2"), str(tmp_path / "f.png"), "-o", str(tmp_path / "rec"), "--max-pixels", "1000"],
         "84 x 84 = 7,056 pixels, over the limit of 1,000"),
        (["reconstruct", str(tmp_path / "tok"), str(tmp_path / "f.png"), "-o", str(tmp_path / "rec"), "--max-pixels", "1000"],
         "over the limit of 1,000 (a possible decompression bomb; --max-pixels N raises the limit)"),
        (["train", "--config", "doom-stage2", "--data", "doom:2"], "trains on a tokenizer's codes"),
        (["train", "--tokenizer", str(tmp_path / "tok"), "--config", "doom-stage2", "--data", "doom:2"], "leave out --data"),
        (["train", "--tokenizer", str(tmp_path / "tok"), "--config", "doom-stage2", "--model.codebook_size=8"], "set by the tokenizer"),
        (["train", "--tokenizer", str(tmp_path / "tok"), "--config", "doom"], "--tokenizer is for models trained on a tokenizer's codes"),
        (["train", "--tokenizer", str(tmp_path / "s2"), *S2], "not a tokenizer"),
    ]:
        capsys.readouterr()
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert msg in err and "\n" not in err, err


def test_the_video_model_trains_and_rolls_out_beside_the_true_game(tmp_path, capsys):
    from PIL import Image

    root = ["--data-root", str(tmp_path / "data")]
    tok = ["train", "--config", "doom", "--data", "doom:2", "--data.image_size=32", "--model.num_downsamples=3", "--model.hidden=8",
           "--model.res_hidden=4", "--model.codebook_size=16", "--model.embedding_dim=4", "--train.batch_size=8", "--steps", "3",
           "--train.eval_every=1000", "--train.eval_images=50", "--no-progress", *root, "--out", str(tmp_path / "vtok")]
    assert main(tok) == 0
    assert main(["world", "train", "--tokenizer", str(tmp_path / "vtok"), "--model.n_embd=16", "--model.n_layer=1", "--model.n_head=2",
                 "--steps", "3", "--train.batch_size=4", "--train.eval_images=20", "--no-progress", *root, "--out", str(tmp_path / "v")]) == 0
    capsys.readouterr()
    gif = tmp_path / "r.gif"
    assert main(["world", "rollout", str(tmp_path / "v"), "--start", "0:10", "--actions", "F L L R", "-o", str(gif), *root]) == 0
    out = capsys.readouterr().out
    assert "4 frames from episode 0 step 10" in out and "PSNR per step" in out
    im = Image.open(gif)
    assert im.n_frames == 5 and im.size == (2 * 32 * 3 + 8, 32 * 3 + 18)  # the start and 4 steps, true | model
    # rollouts from held-out episodes against the truth (bench_world.py's video measure)
    assert main(["train", "--config", "doom-probe", "--data", "doom:2", "--data.image_size=32", "--model.channels=4", "--model.hidden=8",
                 "--steps", "2", "--train.eval_images=20", "--no-progress", *root, "--out", str(tmp_path / "probe")]) == 0
    from vqvae.core import checkpoint
    from vqvae.data import doom
    from vqvae.priors.codes import load_prior
    from vqvae.world.evaluation import rollout_study

    _, video, tok_cfg, tok_model = load_prior(tmp_path / "v")
    _, probe = checkpoint.load_run(tmp_path / "probe")
    eps = doom.episodes(2, "test", root=str(tmp_path / "data"), progress=False)
    r = rollout_study(video, tok_cfg, tok_model, probe, eps, [5, 30], horizon=3)
    assert r["rollouts"] == 2 and len(r["psnr"]) == len(r["copy_psnr"]) == len(r["heading_within_15"]) == 3
    assert r["samples"]["generated"].shape == (2, 3, 3, 32, 32) and 0 <= r["turn_direction_agree"] <= 1
    for argv, msg in [
        (["world", "rollout", str(tmp_path / "v"), "--start", "0", "--actions", "F"], "--start is EPISODE:STEP"),
        (["world", "rollout", str(tmp_path / "v"), "--start", "0:5", "--actions", "F jump"], "actions are L, R, F, SL, SR"),
        (["world", "rollout", str(tmp_path / "vtok"), "--start", "0:5", "--actions", "F"], "not a prior"),
        (["world", "train", "--tokenizer", str(tmp_path / "vtok"), "--model.height=3", *root], "set by the tokenizer"),
    ]:
        capsys.readouterr()
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert msg in err and "\n" not in err, err
