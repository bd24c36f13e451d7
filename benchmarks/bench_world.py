"""Issue 24's figures: the paper's first-person experiments on ViZDoom (section 4.2 and the abstract's video).

Measures trained runs (their commands are in BENCHMARKS.md, section "world"):

    python benchmarks/bench_world.py --tok RUN --prior RUN --stage2 RUN --probe RUN --vtok RUN --video RUN \\
        --update-md BENCHMARKS.md

* first stage (``--tok``, ``--prior``): the tokenizer's test PSNR, SSIM and codebook use, the PixelCNN prior's test
  bits per code, and pictures (reconstructions, prior samples) copied to ``docs/world/``;
* second stage (``--stage2``): the decoder's NLL of the test code maps with each frame's own three latents and with
  another frame's (the information they carry, bits per frame), and the probe's position and heading errors on
  ``--probe-frames`` test frames: real, first-stage reconstructions, second-stage reconstructions and second-stage
  decodings of random latents; a picture (originals, first stage, three second-stage draws);
* video (``--vtok``, ``--video``): rollouts of ``--horizon`` frames from ``--starts`` of every held-out episode under
  the recorded actions: PSNR and SSIM per step ahead against the true frames beside copying the last real frame, and
  the probe's heading read from the generated frames against the game's (within 15 degrees; turn directions); a plot
  and an animated GIF of one rollout beside the truth.

Prints JSON; ``--update-md`` writes the section ``world``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.mdsection import device_label, replace_section  # noqa: E402
from vqvae.core import checkpoint, plots  # noqa: E402
from vqvae.data import doom  # noqa: E402
from vqvae.priors.codes import dataset_codes, fingerprint, load_prior  # noqa: E402
from vqvae.world import inference  # noqa: E402
from vqvae.world.evaluation import rollout_study, stage2_probe  # noqa: E402
from vqvae.world.rollout import write_gif  # noqa: E402
from vqvae.world.tasks import evaluate_stage2  # noqa: E402


def _eval_json(run: str) -> dict:
    return json.loads((Path(run) / "eval.json").read_text())


def first_stage(args, docs: Path) -> dict:
    tok, prior = _eval_json(args.tok), _eval_json(args.prior)
    for run, name, dest in ((args.tok, "reconstructions.png", "stage1_reconstructions.png"), (args.prior, "samples.png", "stage1_prior_samples.png")):
        if (Path(run) / name).is_file():
            shutil.copy(Path(run) / name, docs / dest)
    return {"psnr": tok["psnr"], "ssim": tok["ssim"], "usage_pct": tok["usage_pct"], "perplexity": tok["perplexity"],
            "tok_steps": tok["step"], "prior_bits_per_code": prior["bits_per_code"], "prior_steps": prior["step"]}


def second_stage(args, docs: Path, probe) -> dict:
    cfg, s2, tok_cfg, tok = load_prior(args.stage2)
    codes = dataset_codes(cfg.tokenizer.path, tok_cfg, tok, fingerprint(tok_cfg, tok), "test", data_root=args.data_root).images
    info = evaluate_stage2(s2, codes)
    eps = doom.episodes(doom.parse_name(tok_cfg.data.name), "test", tok_cfg.data.scenario, args.data_root, progress=False)
    frames = torch.from_numpy(eps.frames.reshape(-1, 3, doom.FRAME, doom.FRAME))
    variables = torch.from_numpy(eps.variables.reshape(-1, 3))
    pick = inference.spread(frames.shape[0], args.probe_frames)
    reads = stage2_probe(s2, tok_cfg, tok, probe, frames[pick], variables[pick], seed=0)
    show = inference.spread(frames.shape[0], 6)
    inference.stage2_figure(s2, tok_cfg, tok, frames[show], codes[show], docs / "stage2.png", torch.Generator().manual_seed(0))
    return {**info, "steps": _eval_json(args.stage2)["step"], "probe": reads, "probe_frames": len(pick)}


def video(args, docs: Path, probe) -> dict:
    cfg, model, tok_cfg, tok = load_prior(args.video)
    eps = doom.episodes(doom.parse_name(tok_cfg.data.name), "test", tok_cfg.data.scenario, args.data_root, progress=False)
    starts = [int(s) for s in args.starts.split(",")]
    out = rollout_study(model, tok_cfg, tok, probe, eps, starts, args.horizon, seed=0)
    samples = out.pop("samples")
    start = samples["start"][:1]
    write_gif(torch.cat([start, samples["true"][0]]), torch.cat([start, samples["generated"][0]]), list(samples["actions"][0]),
              docs / "rollout.gif")
    plots.save_grid(torch.cat([samples["true"][0, ::2], samples["generated"][0, ::2]]), docs / "rollout.png",
                    nrow=(args.horizon + 1) // 2, scale=2)
    plt = plots.pyplot()
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.2))
    steps = range(1, args.horizon + 1)
    ax[0].plot(steps, out["psnr"], "o-", label="video model")
    ax[0].plot(steps, out["copy_psnr"], "s--", label="copy the last frame")
    ax[0].set(xlabel="steps ahead", ylabel="PSNR (dB)", title="prediction against the true frames")
    ax[1].plot(steps, [100 * x for x in out["heading_within_15"]], "o-")
    ax[1].set(xlabel="steps ahead", ylabel="% within 15 degrees", title="heading read from generated frames", ylim=(0, 100))
    ax[0].legend()
    fig.tight_layout()
    fig.savefig(docs / "rollout_horizon.png", dpi=110)
    plt.close(fig)
    tok_eval = _eval_json(cfg.tokenizer.path)
    return {**out, "steps": _eval_json(args.video)["step"], "bits_per_code": _eval_json(args.video)["bits_per_code"],
            "vtok_psnr": tok_eval["psnr"], "vtok_usage_pct": tok_eval["usage_pct"], "frame_size": tok_cfg.data.image_size,
            "code_shape": [cfg.model.height, cfg.model.width], "frames": cfg.model.frames}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for flag in ("--tok", "--prior", "--stage2", "--probe", "--vtok", "--video"):
        ap.add_argument(flag, required=True)
    ap.add_argument("--data-root")
    ap.add_argument("--probe-frames", type=int, default=64)
    ap.add_argument("--starts", default="20,60,100,140")
    ap.add_argument("--horizon", type=int, default=16)
    ap.add_argument("--parts", default="stage1,stage2,video")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--docs", default=str(REPO / "docs" / "world"))
    ap.add_argument("--json", help="keep the report here, and merge parts measured earlier into it (run --parts one by one)")
    ap.add_argument("--update-md")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    docs = Path(args.docs)
    docs.mkdir(parents=True, exist_ok=True)
    _, probe = checkpoint.load_run(args.probe)
    report = {"date": time.strftime("%Y-%m-%d"), "device": device_label("cpu"), "torch": torch.__version__, "argv": sys.argv[1:],
              "probe": _eval_json(args.probe)}
    parts = args.parts.split(",")
    if "stage1" in parts:
        report["stage1"] = first_stage(args, docs)
    if "stage2" in parts:
        report["stage2"] = second_stage(args, docs, probe)
    if "video" in parts:
        report["video"] = video(args, docs, probe)
    if args.json:
        path = Path(args.json)
        old = json.loads(path.read_text()) if path.is_file() else {}
        report = {**old, **report}
        path.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    if args.update_md:
        write_md(report, Path(args.update_md))
    return 0


def write_md(r: dict, md: Path) -> None:
    from benchmarks.world_md import section  # noqa: PLC0415 (the Markdown, in its own file)

    replace_section(md, "world", section(r))


if __name__ == "__main__":
    sys.exit(main())
