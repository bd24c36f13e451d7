"""How good a prior is: the paper's bound in bits/dim under it (bits/s for codes of speech), and the scores of its
samples: the accuracy of class-conditional samples and a Fréchet distance on a project-trained classifier's features,
or the Inception FID where its weights are at hand."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from vqvae.core import checkpoint
from vqvae.core.progress import batches
from vqvae.core.task import tokenizer_task
from vqvae.core.train import pick_device
from vqvae.priors import codes
from vqvae.priors.sampling import sampling_filters
from vqvae.priors.tasks import PriorTask
from vqvae.scoring import scores


def evaluate_prior(run: str | Path, split: str = "test", data_root: str | None = None, classifier: str | None = None, samples: int = 1000,
                   seed: int = 0, inception: str | None = None, device: str = "auto", temperature: float = 1.0, top_k: int = 0,
                   top_p: float = 1.0, guidance: float = 1.0) -> dict:
    """A prior's test NLL: bits per code, and the paper's bound in bits/dim next to the uniform prior's (bits/s for
    codes of speech); with a ``classifier`` run and/or the ``inception`` network, the scores of ``samples`` samples
    (drawn with temperature, top_k, top_p and guidance)."""
    dev = pick_device(device)
    cfg, model, tok_cfg, tok = codes.load_prior(run, device=dev)
    filters = sampling_filters(cfg.model, temperature, top_k, top_p, guidance)
    tok_dir = checkpoint.resolve_tokenizer(Path(run), cfg.tokenizer.path)
    cs = codes.dataset_codes(tok_dir, tok_cfg, tok, cfg.tokenizer.fingerprint, split, data_root=data_root)
    pm = PriorTask().evaluate(model, cs.images, cs.labels, 256)
    task = tokenizer_task(tok_cfg.arch, str(tok_dir))
    uniform = math.log2(cfg.model.codebook_size)
    per_s = task.codes_per_second(tok_cfg.model)
    if per_s:  # speech: the code rate under the learned prior vs the uniform one
        return {"run": str(run), "split": split, "clips": len(cs), "prior_bits_per_code": pm["bits_per_code"],
               "uniform_bits_per_code": uniform, "bits_per_second": pm["bits_per_code"] * per_s, "bits_per_second_uniform_prior": uniform * per_s}
    ds = task.load_split(tok_cfg, split, data_root)
    tm = task.evaluate(tok, ds.images, ds.labels, 256)
    subpixels = int(np.prod(ds.images.shape[1:]))
    res = {"run": str(run), "data": ds.name, "split": split, "images": len(ds), "prior_bits_per_code": pm["bits_per_code"],
           "uniform_bits_per_code": uniform, "recon_bits_per_dim": tm["recon_bits_per_dim"],
           # per code times codes per map: the same as the NLL per map, also for a tiled prior (measured on whole tiles)
           "bits_per_dim": tm["recon_bits_per_dim"] + pm["bits_per_code"] * int(np.prod(cs.images.shape[1:])) / subpixels,
           "bits_per_dim_uniform_prior": tm["bits_per_dim"], "tokenizer_psnr": tm["psnr"]}
    if classifier or inception:
        res.update(score_samples(model, tok_cfg.arch, tok, ds, classifier, samples, seed, dev, inception, **filters))
    return res


def summary(res: dict) -> str:
    """The lines ``vqvae eval`` prints for a prior."""
    if "bits_per_second" in res:
        return (f"{res['split']}: {res['prior_bits_per_code']:.3f} bits/code under the prior, "
                f"{res['bits_per_second']:.0f} bits/s (uniform prior: {res['bits_per_second_uniform_prior']:.0f})")
    lines = [f"{res['data']} {res['split']}: {res['bits_per_dim']:.3f} bits/dim under the prior ({res['prior_bits_per_code']:.3f} bits/code), "
             f"{res['bits_per_dim_uniform_prior']:.3f} under the uniform prior"]
    if "fid_inception_samples" in res:
        lines.append(f"Inception FID: samples {res['fid_inception_samples']:.2f}, reconstructions {res['fid_inception_reconstructions']:.2f}")
    if "fd_samples" in res:
        lines.append(f"samples: accuracy {res.get('sample_accuracy', float('nan')):.3f} (classifier on test: {res['classifier_test_accuracy']:.3f}), "
                     f"classifier FD samples {res['fd_samples']:.2f} vs reconstructions {res['fd_reconstructions']:.2f}")
    return "\n".join(lines)


def score_samples(model, tok_arch: str, tok, ds, classifier: str | None, n: int, seed: int, dev, inception: str | None = None,
                  **filters) -> dict:
    """Draw ``n`` samples (balanced over classes if conditional; ``filters``: temperature, top_k, top_p)
    and score them with a classifier run and/or the Inception FID network."""
    net = scores.load_inception(inception) if inception else None
    clf = scores.load_classifier(classifier, ds.channels, dev) if classifier else None
    c = model.config.num_classes
    labels = (torch.arange(n) % c) if c else None
    gen = torch.Generator().manual_seed(seed)
    z = torch.cat([model.sample(min(250, n - s), None if labels is None else labels[s : s + 250].to(dev), generator=gen, **filters).cpu()
                   for s in batches(n, 250, "sampling", min_batches=1)])
    task = tokenizer_task(tok_arch, "the prior's tokenizer")
    samples = task.decode(tok, z)
    recons = task.reconstruct_inputs(tok, ds, progress=False, batch_size=64)
    out = {"samples": n, "sampling": {"temperature": 1.0, "top_k": 0, "top_p": 1.0, "guidance": 1.0, **filters}}
    if net is not None:
        out["fid_inception_samples"] = scores.inception_fd(net, ds.images, samples)
        out["fid_inception_reconstructions"] = scores.inception_fd(net, ds.images, recons)
    if clf is None:
        return out
    out.update({"classifier_test_accuracy": scores.label_accuracy(clf, ds.images, ds.labels) if ds.labels is not None else None,
                "reconstruction_accuracy": scores.label_accuracy(clf, recons, ds.labels) if ds.labels is not None else None,
                "fd_samples": scores.fd_between(clf, ds.images, samples),
                "fd_reconstructions": scores.fd_between(clf, ds.images, recons)})
    if c:
        out["sample_accuracy"] = scores.label_accuracy(clf, samples, labels)
    return out
