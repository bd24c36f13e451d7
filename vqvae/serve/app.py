"""The demo page's web app (Flask): one static page and four JSON endpoints over :mod:`vqvae.serve.actions`.

Flask because it is the most widely used small Python web framework, well kept (Pallets), with file uploads
and a development server built in, and nothing to fetch at run time: the page is one HTML file with its CSS
and JavaScript inline (no CDN, fonts or scripts from elsewhere), so it works offline.

Endpoints (POST, multipart form): ``/api/compress`` (``image``, optional ``quality``), ``/api/sample``
(``label``, ``n``, ``seed``), ``/api/convert`` (``wav`` or ``example``, ``speaker``), ``/api/generate``
(``caption``, ``n``, ``seed``); ``GET /api/info`` says which tabs have a model and what they offer. Bad input
is a 400 with ``{"error": one line}``; a tab without a model a 404 saying how to get one.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from pathlib import Path

from flask import Flask, jsonify, request

from vqvae.core.errors import VQVAEError
from vqvae.serve import actions

PAGE = Path(__file__).resolve().parent / "static" / "index.html"
MAX_UPLOAD = 32 * 1024 * 1024


@dataclass
class Models:
    """What the page serves; ``None`` for a tab without a model (``missing`` says how to get one)."""

    codec: str | None = None  # a codec model name or prior run
    prior: actions.Prior | None = None
    voice: actions.Voice | None = None
    scenes: actions.Scenes | None = None
    examples: dict[str, bytes] = field(default_factory=dict)  # example wavs by name, for the voice tab
    missing: dict[str, str] = field(default_factory=dict)


def _run(models: Models, tab: str, fn):
    """One endpoint: 404 without its model, 400 with the one-line error on bad input, else its JSON and the seconds."""
    if getattr(models, tab) is None:
        return jsonify({"error": models.missing.get(tab, f"no {tab} model loaded")}), 404
    t = time.perf_counter()
    try:
        out = fn(models)
    except VQVAEError as e:
        return jsonify({"error": str(e)}), 400
    except (KeyError, ValueError) as e:
        return jsonify({"error": f"bad request: {e}"}), 400
    out["seconds"] = round(time.perf_counter() - t, 3)
    return jsonify(out)


def _upload(name: str) -> bytes:
    f = request.files.get(name)
    if f is None:
        raise VQVAEError(f"no {name} file in the request")
    return f.read()


def _compress(m: Models) -> dict:
    q = request.form.get("quality")
    return actions.compress_compare(m.codec, _upload("image"), [int(q)] if q else None)


def _sample(m: Models) -> dict:
    f = request.form
    return {"image": actions.data_url(m.prior.sample(int(f["label"]), int(f.get("n", 16)), int(f.get("seed", 0))), "image/png")}


def _convert(m: Models) -> dict:
    ex = request.form.get("example")
    if ex and ex not in m.examples:
        raise VQVAEError(f"no example {ex!r}; the examples are {', '.join(sorted(m.examples))}")
    wav = m.examples[ex] if ex else _upload("wav")
    out = m.voice.convert(wav, request.form["speaker"])
    return {"input": actions.data_url(wav, "audio/wav"), "audio": actions.data_url(out, "audio/wav"), "bytes": len(out)}


def _generate(m: Models) -> dict:
    f = request.form
    return {"image": actions.data_url(m.scenes.generate(f["caption"], int(f.get("n", 8)), seed=int(f.get("seed", 0))), "image/png")}


ENDPOINTS = {"compress": ("codec", _compress), "sample": ("prior", _sample), "convert": ("voice", _convert),
             "generate": ("scenes", _generate)}


def _info(m: Models):
    return jsonify({
        "codec": {"ready": m.codec is not None, "why": m.missing.get("codec")},
        "prior": {"ready": m.prior is not None, "classes": m.prior.classes if m.prior else [], "why": m.missing.get("prior")},
        "voice": {"ready": m.voice is not None, "speakers": m.voice.speakers if m.voice else [], "examples": sorted(m.examples),
                  "why": m.missing.get("voice")},
        "scenes": {"ready": m.scenes is not None, "why": m.missing.get("scenes")},
    })


def create_app(models: Models) -> Flask:
    """The page's app over ``models``."""
    app = Flask("vqvae.serve")
    app.config["MAX_CONTENT_LENGTH"] = MAX_UPLOAD
    app.add_url_rule("/", "page", lambda: (PAGE.read_text(), 200, {"Content-Type": "text/html; charset=utf-8"}))
    app.add_url_rule("/api/info", "info", functools.partial(_info, models))
    for name, (tab, fn) in ENDPOINTS.items():
        app.add_url_rule(f"/api/{name}", name, functools.partial(_run, models, tab, fn), methods=["POST"])
    return app
