"""Making a zoo model (:mod:`vqvae.core.zoo`) from run directories: ``vqvae zoo export``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from safetensors.torch import load_file, save_file

from vqvae.core import checkpoint
from vqvae.core.zoo import CARD, MANIFEST, ZOO, ZooError, sha256


def export(name: str, parts: dict[str, str | Path], main: str, summary: str, data: str, headline: dict | None = None,
           use: list[str] | None = None, fp16: tuple[str, ...] = (), card: str | Path | None = None, root: Path = ZOO,
           links: dict[str, str] | None = None, extra: dict[str, bytes] | None = None, sampling: dict | None = None) -> Path:
    """Make zoo model ``name`` from run directories ``parts`` (part -> run): their config and weights (``fp16`` parts
    stored in half precision), a prior's tokenizer path made relative to the folder, the card copied, the manifest
    written with every file's SHA-256. Replaces an earlier folder of that name.

    ``links`` (prior part -> tokenizer part) binds a prior to another part than the run it recorded: a tokenizer with
    the same codes (its decoder fine-tuned on them; loading checks the codebooks' fingerprint). ``extra`` (relative
    path -> bytes): family files that ship beside the runs (the codec's ``codec.json``), hashed like the rest.
    ``sampling``: the generation settings the card measured (``vqvae generate``'s defaults for this model); a
    ``"clip"`` entry names the part that reranks."""
    if main not in parts:
        raise ZooError(f"--main {main!r} is not one of the parts {', '.join(parts)}")
    if sampling and sampling.get("clip") is not None and sampling["clip"] not in parts:
        raise ZooError(f"sampling's clip {sampling['clip']!r} is not one of the parts {', '.join(parts)}")
    folder = root / name
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    runs = {Path(r).resolve(): part for part, r in parts.items()}
    for part, run in parts.items():
        src, dst = Path(run), folder / part
        dst.mkdir()
        cfg = json.loads((src / "config.json").read_text())
        tok = (cfg.get("tokenizer") or {}).get("path")
        if part in (links or {}):
            if links[part] not in parts:
                raise ZooError(f"part {part} is linked to {links[part]!r}, which is not one of the parts {', '.join(parts)}")
            cfg["tokenizer"]["path"] = f"../{links[part]}"
        elif tok:
            linked = checkpoint.resolve_tokenizer(src, tok).resolve()
            if linked not in runs:
                raise ZooError(f"part {part} is a prior over {linked}: export that tokenizer as a part too")
            cfg["tokenizer"]["path"] = f"../{runs[linked]}"
        (dst / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
        if part in fp16:
            raw = (src / "model.safetensors").read_bytes()
            meta = json.loads(raw[8 : 8 + int.from_bytes(raw[:8], "little")]).get("__metadata__")
            tensors = {k: v.half() if v.is_floating_point() else v for k, v in load_file(src / "model.safetensors").items()}
            save_file(tensors, dst / "model.safetensors", metadata=meta)
        else:
            shutil.copyfile(src / "model.safetensors", dst / "model.safetensors")
        for needed in ("text.json",):  # files a run needs besides its weights (DALL-E's and CLIP's BPE)
            if (src / needed).is_file():
                shutil.copyfile(src / needed, dst / needed)
    for rel, content in (extra or {}).items():
        (folder / rel).write_bytes(content)
    if card:
        shutil.copyfile(card, folder / CARD)
    files = {str(p.relative_to(folder)): sha256(p) for p in sorted(folder.rglob("*")) if p.suffix in (".json", ".safetensors")}
    m = {"name": name, "summary": summary, "data": data, "main": main, "parts": {p: p for p in parts}, "fp16": list(fp16),
         "headline": headline or {}, "use": use or [], **({"sampling": sampling} if sampling else {}), "files": files}
    (folder / MANIFEST).write_text(json.dumps(m, indent=2) + "\n")
    return folder
