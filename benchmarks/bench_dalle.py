"""DALL-E on the captioned scenes: prompt faithfulness (held-out and seen combinations), guidance, sampling speed.

    python benchmarks/bench_dalle.py --run runs/dalle --reader runs/scene-reader [READER ...] [--prompts 100] [--per-prompt 4]
        [--guidance 1 2 3 5] [--temperature 1 0.8] [--candidates 4 [--clip runs/scene-clip]] [--update-md BENCHMARKS.md]

The reader reads the tokenizer's decoded scenes, so it is trained on them beside the rendered ones:
``vqvae classifier train --data scenes --data.reconstructions_from=runs/scenes-tok --out runs/scene-reader``.

Several ``--reader`` runs are read as one ensemble (:class:`vqvae.text2image.scene_reader.ReaderEnsemble`): one small
reader's figure on samples moves by a few points with its training run, an ensemble's less.

* Ceilings: the reader's accuracy on the real ``heldout`` and ``test`` scenes,
  and on the tokenizer's reconstructions of them.
* Faithfulness: ``per-prompt`` samples for each of the first ``prompts``
  captions of each split, at each guidance scale and sampling temperature
  (no top-k / top-p); a sample counts when the reader finds the layout and both objects'
  class, colour and size of its caption.
* Reranking (``--candidates C``): each prompt draws ``C * per-prompt`` samples and keeps the
  ``per-prompt`` ranked highest (DALL-E's reranking): by the CLIP in ``--clip`` (``vqvae clip train``,
  trained on the generator's train split only), else by the transformer's own likelihood of the codes
  given the caption (:meth:`vqvae.text2image.dalle.Dalle.image_log_prob`). The reader never ranks. The same draw read without
  reranking (all ``C * per-prompt`` samples) is reported beside it.
* Sampling speed: images per second of ``generate`` (codes) for 16 captions,
  with and without the KV cache, in one run on this machine.
Writes ``bench_out/dalle/report.json`` and the grid ``docs/dalle/grid.png``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.mdsection import device_label, replace_section  # noqa: E402
from vqvae.core import checkpoint, zoo
from vqvae.text2image import evaluate as dalle_eval
from vqvae.text2image import loading
from vqvae.text2image import plots as t2i_plots
from vqvae.data import scenes  # noqa: E402
from vqvae.text2image.loading import load_dalle  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", default="runs/dalle")
    ap.add_argument("--reader", nargs="+", default=["runs/scene-reader"], help="one reader run, or several read as an ensemble")
    ap.add_argument("--prompts", type=int, default=100)
    ap.add_argument("--per-prompt", type=int, default=4)
    ap.add_argument("--guidance", type=float, nargs="+", default=[1.0, 2.0, 3.0, 5.0])
    ap.add_argument("--temperature", type=float, nargs="+", default=[1.0], help="sampling temperatures, each tried at every guidance scale")
    ap.add_argument("--candidates", type=int, default=1, help="rerank: keep the best per-prompt of candidates x per-prompt samples")
    ap.add_argument("--clip", help="a CLIP run that ranks the candidates (default: the transformer's likelihood)")
    ap.add_argument("--out", default="bench_out/dalle")
    ap.add_argument("--grid", default="docs/dalle/grid.png")
    ap.add_argument("--update-md")
    args = ap.parse_args(argv)
    args.shown = f"--run {args.run} --reader {' '.join(args.reader)}" + (f" --clip {args.clip}" if args.clip else "")  # as typed
    args.run, args.clip = str(zoo.resolve(args.run)), args.clip and str(zoo.resolve(args.clip))  # zoo:NAME[/PART] too
    args.reader = [str(zoo.resolve(r)) for r in args.reader]
    cfg, model, text, tok = load_dalle(args.run)
    reader = loading.load_reader(args.reader)
    clip = loading.load_clip(args.clip) if args.clip else None
    n_train = scenes.parse_name(cfg.data.name)
    rep = {"run": args.run, "reader": args.reader, "device": device_label(), "date": time.strftime("%Y-%m-%d"),
           "parameters": sum(p.numel() for p in model.parameters()), "data": cfg.data.name,
           "train_steps": _eval(args.run).get("step"), "test_image_nll": _eval(args.run).get("image_loss")}
    rep["candidates"] = args.candidates
    if args.clip:
        ccfg = checkpoint.load_config(args.clip)
        rep["clip"] = {"run": args.clip, "data": ccfg.data.name, "reconstructions_from": ccfg.data.reconstructions_from,
                       **_eval(args.clip)}
    rep["reader_steps"] = [reader_steps(r) for r in args.reader]
    rep["reader_reconstructions_from"] = checkpoint.load_config(args.reader[0]).data.reconstructions_from
    rep["ceilings"] = {split: dalle_eval.ceilings(reader, tok, n_train, split) for split in ("heldout", "test")}
    print(json.dumps(rep["ceilings"]), flush=True)
    rep["faithfulness"] = {}
    keep = {}
    for split in ("heldout", "test"):
        caps, attrs = dalle_eval.prompts(n_train, split, args.prompts)
        for key, (g, temp) in settings(args).items():
            t0 = time.perf_counter()
            acc, images = dalle_eval.faithfulness(model, text, tok, reader, caps, attrs, args.per_prompt, guidance=g, temperature=temp,
                                                  seed=0, progress=True, candidates=args.candidates, clip=clip)
            acc["seconds"] = time.perf_counter() - t0
            rep["faithfulness"].setdefault(split, {})[key] = acc
            keep[(split, key)] = (caps, attrs, images)
            print(split, key, json.dumps(acc), flush=True)
    caps16 = dalle_eval.prompts(n_train, "heldout", 16)[0]
    rep["speed_images_per_s"] = {"kv_cache": dalle_eval.sampling_speed(model, text, caps16, True),
                                 "no_cache": dalle_eval.sampling_speed(model, text, caps16, False)}
    rep["speed_images_per_s"]["ratio"] = rep["speed_images_per_s"]["kv_cache"] / rep["speed_images_per_s"]["no_cache"]
    print(json.dumps(rep["speed_images_per_s"]), flush=True)
    best = max(settings(args), key=lambda key: rep["faithfulness"]["heldout"][key]["all"])
    rep["best_guidance"] = best
    caps, attrs, images = keep[("heldout", best)]
    k = min(8, len(caps))
    per = args.per_prompt
    pred = reader.read(images[: k * per])
    ok = scenes.faithful(pred, attrs[:k].repeat_interleave(per, 0)).view(k, per).tolist()
    t2i_plots.save_prompt_grid([(caps[i], images[i * per : (i + 1) * per]) for i in range(k)], args.grid, marks=ok)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "report.json").write_text(json.dumps(rep, indent=2))
    print(json.dumps(rep, indent=2))
    if args.update_md:
        replace_section(Path(args.update_md), "dalle", markdown(rep, args))
    return 0


def _eval(run) -> dict:
    """A run's final evaluation (``eval.json``); {} for a shipped zoo part, which keeps only its config and weights."""
    path = Path(run) / "eval.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def settings(args) -> dict[str, tuple[float, float]]:
    """The sampling settings measured, by report key: ``"guidance 2, temperature 1"`` -> ``(2.0, 1.0)``."""
    return {f"guidance {g:g}, temperature {t:g}": (g, t) for t in args.temperature for g in args.guidance}


def _cell(a: dict, bold: bool = False) -> str:
    head = f"**{a['all']:.1%}**" if bold else f"{a['all']:.1%}"
    return f"{head} (class {a['class']:.0%}, colour {a['colour']:.0%}, size {a['size']:.0%}, position {a['position']:.0%})"


def weak(acc: dict, n: int = 4) -> str:
    """The ``n`` classes read worst in an accuracy dict (:func:`vqvae.data.scenes.attribute_accuracy`), with their accuracy."""
    return ", ".join(f"{k} {v:.0%}" for k, v in sorted(acc["class_by_class"].items(), key=lambda kv: kv[1])[:n])


def reader_steps(run: str) -> int:
    """A reader run's training steps, counting the runs it was fine-tuned from (``train.init_from``)."""
    cfg = checkpoint.load_config(run)
    return cfg.train.steps + (reader_steps(cfg.train.init_from) if cfg.train.init_from else 0)


def reader_text(rep: dict) -> str:
    src = rep.get("reader_reconstructions_from")
    how = (f"the rendered scenes of every colour-class pair (training glyphs) and the tokenizer {src}'s reconstructions of them, "
           "so it reads decoded scenes" if src else "the crisp rendered scenes only")
    steps = rep.get("reader_steps") or []
    steps = [steps] if isinstance(steps, int) else steps
    who = (f"The reader (`vqvae classifier train --data scenes`, {steps[0]} steps)" if len(steps) == 1 else
           f"The reader, an ensemble of {len(steps)} runs of `vqvae classifier train --data scenes` ({' / '.join(map(str, steps))} steps; "
           "per head, the sum of their log-probabilities),")
    return (f"{who} trains on {how}; "
            "its ceilings below bound any figure read through it.")


def markdown(rep: dict, args) -> str:
    c = rep["ceilings"]
    lines = [f"### Prompt faithfulness on the captioned scenes ({rep['date']}, {rep['device']})", "",
             f"`python benchmarks/bench_dalle.py {args.shown} --prompts {args.prompts} --per-prompt {args.per_prompt} "
             f"--guidance {' '.join(f'{g:g}' for g in args.guidance)} --temperature {' '.join(f'{t:g}' for t in args.temperature)} "
             + (f"--candidates {args.candidates} " if args.candidates > 1 else "")
             + (f"--grid {args.grid} " if args.grid != "docs/dalle/grid.png" else "") + f"--update-md {Path(args.update_md).name}`", "",
             f"Transformer: {rep['parameters'] / 1e6:.2f} M parameters, {rep['train_steps'] or 'its'} steps on {rep['data']}"
             + (f"; test image NLL {rep['test_image_nll']:.3f} nats/code" if rep["test_image_nll"] is not None else "")
             + ". A sample is faithful when the scene reader finds its caption's layout and both objects' "
             "class, colour and size. Held-out: every caption names a colour-class pair the transformer and the tokenizer never saw in "
             "training. " + reader_text(rep), "",
             "| | held-out | seen (test) |", "|---|---|---|",
             f"| reader on real scenes (ceiling) | {_cell(c['heldout']['real'])} | {c['test']['real']['all']:.1%} |",
             f"| reader on tokenizer reconstructions (ceiling) | {_cell(c['heldout']['reconstructed'])} | {c['test']['reconstructed']['all']:.1%} |"]
    f = rep["faithfulness"]
    for g in f["heldout"]:
        h, t = f["heldout"][g], f["test"][g]
        if "unranked" in h:
            lines.append(f"| samples, {g} ({h['unranked']['samples']} drawn) | {_cell(h['unranked'])} | {t['unranked']['all']:.1%} |")
            g = f"{g}, the best {args.per_prompt} of {args.per_prompt * args.candidates} by {'CLIP' if args.clip else 'likelihood'}"
        lines.append(f"| samples, {g} | {_cell(h, bold=True)} | {t['all']:.1%} |")
    lines += ["", f"Weakest classes on held-out scenes (class read right, per object): real {weak(c['heldout']['real'])}; "
              f"reconstructed {weak(c['heldout']['reconstructed'])}; samples at {rep['best_guidance']} {weak(f['heldout'][rep['best_guidance']])}."]
    if rep.get("clip"):
        k = rep["clip"]
        rec = f" and the tokenizer {k['reconstructions_from']}'s reconstructions of them" if k["reconstructions_from"] else ""
        trained = f"{k['step']} steps on " if "step" in k else ""
        picks = f" On test scenes it picks the right caption for {k['accuracy']:.1%} of images among {k['batch']}." if "accuracy" in k else ""
        lines += ["", f"Reranker: the CLIP `{k['run']}` (`vqvae clip train`, {trained}the train split of {k['data']}{rec}: "
                  "seen colour-class pairs only, like the transformer; the scene reader plays no part in ranking)." + picks]
    s = rep["speed_images_per_s"]
    lines += ["", f"Sampling speed (16 captions, codes only): {s['kv_cache']:.1f} images/s with the KV cache, {s['no_cache']:.1f} without: "
              f"**{s['ratio']:.1f}×**. Grid of held-out prompts at {rep['best_guidance']} (green: faithful): `{args.grid}`."]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
