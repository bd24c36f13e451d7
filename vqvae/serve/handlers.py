"""``vqvae serve``: load what the page serves, then run its web app (:mod:`vqvae.serve.app`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from vqvae.codec.api import available_models
from vqvae.codec.defaults import DEFAULT_MODEL
from vqvae.core import zoo
from vqvae.core.errors import VQVAEError
from vqvae.serve import actions
from vqvae.serve.app import Models, create_app

DEFAULTS = {"prior": "fashion-mnist", "voice": "fsdd", "scenes": "scenes"}  # the zoo model each tab uses unless told


def load_models(codec: str | None = None, prior: str | None = None, voice: str | None = None, scenes: str | None = None,
                clip: str | None = None, examples: str | None = None) -> Models:
    """The page's models: those given, else the shipped ones; a tab whose model is missing says how to get one."""
    m = Models()
    shipped = zoo.names()
    if codec or DEFAULT_MODEL in available_models():
        m.codec = codec or DEFAULT_MODEL
    else:
        m.missing["codec"] = (f"The default codec model {DEFAULT_MODEL} is not installed (its weights do not ship yet): "
                              f"start the page with --codec PRIOR_RUN, a prior trained with --tile (see the README).")
    given = {"prior": prior, "voice": voice, "scenes": scenes}
    for tab, cls in (("prior", actions.Prior), ("voice", actions.Voice)):
        run = given[tab] or (f"zoo:{DEFAULTS[tab]}" if DEFAULTS[tab] in shipped else None)
        if run:
            setattr(m, tab, cls(str(zoo.resolve(run))))
        else:
            m.missing[tab] = f"zoo:{DEFAULTS[tab]} is not installed: start the page with --{tab} RUN."
    run = scenes or (f"zoo:{DEFAULTS['scenes']}" if DEFAULTS["scenes"] in shipped else None)
    if run:
        if clip is None and zoo.is_zoo(run) and "clip" in zoo.manifest(DEFAULTS["scenes"])["parts"]:
            clip = f"{run}/clip"
        m.scenes = actions.Scenes(str(zoo.resolve(run)), str(zoo.resolve(clip)) if clip else None)
    else:
        m.missing["scenes"] = f"zoo:{DEFAULTS['scenes']} is not installed: start the page with --scenes DALLE_RUN."
    folder = Path(examples) if examples else (Path(m.voice.run).parent / "examples" if m.voice else None)
    if examples and not (folder and folder.is_dir()):
        raise VQVAEError(f"--examples {examples} is not a folder of wav files")
    if folder and folder.is_dir():
        m.examples = {p.name: p.read_bytes() for p in sorted(folder.glob("*.wav"))}
    return m


def serve(args: argparse.Namespace) -> None:
    models = load_models(args.codec, args.prior, args.voice, args.scenes, args.clip, args.examples)
    ready = [t for t in ("codec", "prior", "voice", "scenes") if getattr(models, t) is not None]
    print(f"vqvae serve: http://{args.host}:{args.port}/  (tabs with a model: {', '.join(ready) or 'none'}; Ctrl-C stops it)")
    create_app(models).run(host=args.host, port=args.port, debug=False, use_reloader=False)
