"""How DALL-E's reranking moves prompt faithfulness: which scorer, and how many candidates.

    python benchmarks/bench_rerank.py --run runs/dalle-ft --reader runs/scene-reader-obj [READER ...] --clip runs/scene-clip
        [--prompts 100] [--per-prompt 4] [--max-candidates 8] [--setting 3 0.8] [--setting 2 1] [--update-md BENCHMARKS.md]

For each split (``test``: seen colour-class pairs, ``heldout``: unseen) and sampling setting (guidance,
temperature), one seeded draw of ``max-candidates * per-prompt`` samples per caption is read once by the
scene reader; every scorer then keeps the ``per-prompt`` best of the first ``C * per-prompt`` candidates for
each C in 2, 4, .. max-candidates, so all scorers are compared on the same samples:

* ``clip``: the project's CLIP (``vqvae clip train``), cosine similarity of image and caption;
* ``likelihood``: the transformer's ``log p(codes | caption)`` (:meth:`vqvae.text2image.dalle.Dalle.image_log_prob`);
* ``pmi``: ``log p(codes | caption) - log p(codes | no caption)``, how much the caption raises the likelihood;
* unranked: every candidate read (the figure without reranking).

Writes ``bench_out/rerank/report.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.mdsection import device_label, replace_section  # noqa: E402
from vqvae.text2image import evaluate as dalle_eval
from vqvae.text2image import loading
from vqvae.data import scenes  # noqa: E402
from vqvae.text2image.loading import load_dalle  # noqa: E402


def kept_accuracy(score: torch.Tensor, ok: torch.Tensor, per: int, c: int) -> float:
    """Faithful fraction of the ``per`` best-scored among the first ``c * per`` candidates of each caption (rows)."""
    top = score[:, : c * per].topk(per, dim=1).indices
    return float(ok[:, : c * per].gather(1, top).mean())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", default="runs/dalle-ft")
    ap.add_argument("--reader", nargs="+", required=True)
    ap.add_argument("--clip", required=True)
    ap.add_argument("--prompts", type=int, default=100)
    ap.add_argument("--per-prompt", type=int, default=4)
    ap.add_argument("--max-candidates", type=int, default=8)
    ap.add_argument("--setting", type=float, nargs=2, action="append", metavar=("GUIDANCE", "TEMPERATURE"))
    ap.add_argument("--out", default="bench_out/rerank")
    ap.add_argument("--update-md")
    args = ap.parse_args(argv)
    settings = args.setting or [[3.0, 0.8], [2.0, 1.0]]
    cfg, model, text, tok = load_dalle(args.run)
    reader, clip = loading.load_reader(args.reader), loading.load_clip(args.clip)
    n_train = scenes.parse_name(cfg.data.name)
    per, cmax = args.per_prompt, args.max_candidates
    cs = [c for c in (2, 4, 8, 16, 32) if c <= cmax]
    rep = {"run": args.run, "reader": args.reader, "clip": args.clip, "device": device_label(), "date": time.strftime("%Y-%m-%d"),
           "prompts": args.prompts, "per_prompt": per, "results": {}}
    for split in ("test", "heldout"):
        caps, attrs = dalle_eval.prompts(n_train, split, args.prompts)
        n = len(caps)
        for g, temp in settings:
            d = dalle_eval.draw(model, text, tok, caps, per, guidance=g, temperature=temp, seed=0, candidates=cmax, clip=clip, progress=True)
            ok = scenes.faithful(reader.read(d.candidates), attrs.repeat_interleave(per * cmax, 0)).float().view(n, -1)
            ids = torch.stack([text.encode(c, warn=False) for c in caps]).repeat_interleave(per * cmax, 0)
            cond = torch.cat([model.image_log_prob(ids[s : s + 256], d.codes[s : s + 256]) for s in range(0, len(ids), 256)])
            unc = torch.cat([model.image_log_prob(model.empty_caption(min(256, len(ids) - s)), d.codes[s : s + 256])
                             for s in range(0, len(ids), 256)])
            scores = {"clip": d.scores, "likelihood": cond, "pmi": cond - unc}
            row = {"all drawn": float(ok.mean())}
            for name, s in scores.items():
                for c in cs:
                    row[f"{name} {per} of {c * per}"] = kept_accuracy(s.view(n, -1), ok, per, c)
            key = f"{split}, guidance {g:g}, temperature {temp:g}"
            rep["results"][key] = row
            print(key, json.dumps({k: round(v, 3) for k, v in row.items()}), flush=True)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "report.json").write_text(json.dumps(rep, indent=2))
    if args.update_md:
        replace_section(Path(args.update_md), "rerank", markdown(rep, args, cs))
    return 0


def markdown(rep: dict, args, cs: list[int]) -> str:
    per = rep["per_prompt"]
    sets = " ".join(f"--setting {g:g} {t:g}" for g, t in (args.setting or [[3.0, 0.8], [2.0, 1.0]]))
    lines = [f"### Reranking: scorer and candidates ({rep['date']}, {rep['device']})", "",
             f"`python benchmarks/bench_rerank.py --run {args.run} --reader {' '.join(args.reader)} --clip {args.clip} "
             f"--prompts {args.prompts} --per-prompt {per} --max-candidates {args.max_candidates} {sets} --update-md BENCHMARKS.md`", "",
             f"Faithful fraction of the {per} kept samples per caption ({args.prompts} captions per row), each scorer choosing "
             "among the same seeded candidates.", "",
             "| split, sampling | unranked (all drawn) | " + " | ".join(f"{s} best {per} of {c * per}" for s in ("CLIP", "likelihood", "PMI")
                                                          for c in cs) + " |",
             "|---|---|" + "---|" * (3 * len(cs))]
    for key, row in rep["results"].items():
        cells = [f"{row[f'{s} {per} of {c * per}']:.1%}" for s in ("clip", "likelihood", "pmi") for c in cs]
        lines.append(f"| {key} | {row['all drawn']:.1%} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
