"""The Markdown of bench_world.py's section of BENCHMARKS.md (issue 24)."""

from __future__ import annotations


def _cmd(r: dict) -> str:
    return "python benchmarks/bench_world.py " + " ".join(r["argv"])


def section(r: dict) -> str:
    p = r["probe"]
    lines = [f"`{_cmd(r)}` ({r['date']}, {r['device']}, torch {r['torch']})", "",
             f"The probe (real test frames): position error {p['position_error']:.1f} map units (median "
             f"{p['position_error_median']:.1f}), heading error {p['heading_error_deg']:.1f} degrees, "
             f"{100 * p['heading_within_15']:.1f} % within 15 degrees.", ""]
    if "stage1" in r:
        s = r["stage1"]
        lines += ["**First stage** (84 x 84 -> 21 x 21, K = 512): "
                  f"test PSNR **{s['psnr']:.2f} dB**, SSIM {s['ssim']:.3f}, **{s['usage_pct']:.1f} %** of the codes in use "
                  f"(perplexity {s['perplexity']:.0f}) after {s['tok_steps']} steps; the PixelCNN prior over the 21 x 21 codes: "
                  f"{s['prior_bits_per_code']:.3f} bits per code (uniform: 9) after {s['prior_steps']} steps.", "",
                  "![first-stage reconstructions](docs/world/stage1_reconstructions.png)",
                  "![the prior's samples, decoded](docs/world/stage1_prior_samples.png)", ""]
    if "stage2" in r:
        s = r["stage2"]
        lines += [f"**Second stage** (three latents, K = 512 each, PixelCNN decoder over the 21 x 21 codes; {s['steps']} steps), "
                  f"{s['maps']} test frames: NLL {s['bits_per_map']:.0f} bits per frame with its own latents, "
                  f"{s['swapped_bits_per_map']:.0f} with another frame's: the latents carry **{s['information_bits']:.0f} bits per frame** "
                  f"(the three latents hold at most 27 bits; the gap can be larger because another frame's latents mislead the decoder: "
                  f"it measures how much the decoder relies on them); "
                  f"{s['latent_usage_pct']:.1f} % of the latents' codes in use.", "",
                  f"What the probe reads ({s['probe_frames']} test frames spread over the held-out episodes):", "",
                  "| frames | position error (map units), mean / median | heading error (degrees) | within 15 degrees |",
                  "|---|---|---|---|"]
        for name, m in s["probe"].items():
            lines.append(f"| {name} | {m['position_error']:.1f} / {m['position_error_median']:.1f} | {m['heading_error_deg']:.1f} | "
                         f"{100 * m['heading_within_15']:.1f} % |")
        lines += ["", "![originals, first-stage reconstructions, three second-stage draws](docs/world/stage2.png)", ""]
    if "video" in r:
        v = r["video"]
        lines += [f"**Video in latent space**: per-frame tokenizer {v['frame_size']} x {v['frame_size']} -> {v['code_shape'][0]} x "
                  f"{v['code_shape'][1]} codes (test PSNR {v['vtok_psnr']:.2f} dB, {v['vtok_usage_pct']:.1f} % of codes in use); "
                  f"the model sees {v['frames'] - 1} frames of context ({v['steps']} steps, test {v['bits_per_code']:.3f} bits per "
                  f"code). {v['rollouts']} rollouts of {v['horizon']} frames from steps {v['starts']} of the "
                  f"{len(v['episodes'])} held-out episodes under their recorded actions:", "",
                  "| steps ahead | " + " | ".join(str(k) for k in range(1, v["horizon"] + 1)) + " |",
                  "|---|" + "---|" * v["horizon"],
                  "| PSNR, model (dB) | " + " | ".join(f"{x:.2f}" for x in v["psnr"]) + " |",
                  "| PSNR, copy the last frame | " + " | ".join(f"{x:.2f}" for x in v["copy_psnr"]) + " |",
                  "| SSIM, model | " + " | ".join(f"{x:.3f}" for x in v["ssim"]) + " |",
                  "| SSIM, copy the last frame | " + " | ".join(f"{x:.3f}" for x in v["copy_ssim"]) + " |",
                  "| heading within 15 degrees | " + " | ".join(f"{100 * x:.0f} %" for x in v["heading_within_15"]) + " |", "",
                  f"Heading read by the probe from generated frames within 15 degrees of the game's: **{100 * v['heading_within_15_all']:.1f} %** "
                  f"of steps (read from the true frames: {100 * v['heading_within_15_real']:.1f} %, the probe's ceiling); within 15 degrees "
                  f"of the probe's reading of the true frame: {100 * v['heading_within_15_of_real_reading']:.1f} %. Turn direction "
                  f"read from generated frames matches the game's on {100 * v['turn_direction_agree']:.1f} % of the {v['turns']} true "
                  f"turns (from the true frames: {100 * v['turn_direction_agree_real']:.1f} %).", "",
                  "![the model against copying the last frame, and the heading it keeps](docs/world/rollout_horizon.png)", "",
                  "![a rollout: true frames (top), generated (bottom), every other step](docs/world/rollout.png)",
                  " [animated](docs/world/rollout.gif)"]
    return "\n".join(lines)
