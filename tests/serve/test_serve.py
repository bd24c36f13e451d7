"""The demo page: each endpoint through Flask's test client, then the page itself in headless Chromium."""

from __future__ import annotations

import base64
import io
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.io import wavfile

from tests.helpers import tiny_codec_run
from vqvae.codec.api import load_codec
from vqvae.serve import actions
from vqvae.serve.app import Models, create_app

RUNS = Path(__file__).resolve().parents[1] / "fixtures" / "runs"


@pytest.fixture(scope="module")
def codec_run(tmp_path_factory):
    """A tiny residual tokenizer and the tiled prior over its codes (a codec model given as a prior run)."""
    root = tiny_codec_run(tmp_path_factory.mktemp("codec"))
    return root


def _photo(h=40, w=56) -> bytes:
    rng = np.random.default_rng(0)
    a = (np.linspace(0, 255, w)[None, :, None] * np.ones((h, 1, 3)) * [1, 0.6, 0.3] + rng.integers(0, 30, (h, w, 3))).clip(0, 255)
    buf = io.BytesIO()
    Image.fromarray(a.astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _wav(sr=8000, seconds=0.5) -> bytes:
    t = np.arange(int(sr * seconds)) / sr
    buf = io.BytesIO()
    wavfile.write(buf, sr, (0.3 * np.sin(2 * np.pi * 220 * t) * 32767).astype(np.int16))
    return buf.getvalue()


@pytest.fixture(scope="module")
def models(codec_run):
    return Models(codec=str(codec_run / "prior"), prior=actions.Prior(str(RUNS / "gpt")), voice=actions.Voice(str(RUNS / "audio")),
                  scenes=actions.Scenes(str(RUNS / "dalle"), str(RUNS / "clip")), examples={"tone.wav": _wav()})


def _decode_data_url(url: str, mime: str) -> bytes:
    head, _, b64 = url.partition(",")
    assert head == f"data:{mime};base64"
    return base64.b64decode(b64)


def test_every_endpoint_returns_what_the_page_shows(models):
    c = create_app(models).test_client()
    info = c.get("/api/info").get_json()
    assert all(info[t]["ready"] for t in ("codec", "prior", "voice", "scenes")) and info["voice"]["examples"] == ["tone.wav"]

    r = c.post("/api/compress", data={"image": (io.BytesIO(_photo()), "p.png")}).get_json()
    assert [row["quality"] for row in r["rows"]] == [1, 2]
    codec = load_codec(models.codec)
    x = torch.from_numpy(np.asarray(Image.open(io.BytesIO(_photo())))).permute(2, 0, 1).contiguous()
    for row in r["rows"]:
        blob, _ = codec.compress(x, quality=row["quality"], refine=0)  # the oracle: the codec's own round trip
        assert row["bytes"] == len(blob)
        with Image.open(io.BytesIO(_decode_data_url(row["image"], "image/png"))) as im:
            assert im.size == (56, 40)  # the decoded photo, its own size
            assert np.array_equal(np.asarray(im), codec.decompress(blob).permute(1, 2, 0).numpy())
        assert row["jpeg"]["bytes"] <= row["bytes"] or row["jpeg"]["quality"] == 1  # JPEG and WebP no bigger than ours
        assert row["webp"]["bytes"] <= row["bytes"] or row["webp"]["quality"] == 1
        assert np.isfinite(row["psnr"]) and row["bpp"] == pytest.approx(8 * row["bytes"] / (56 * 40))

    r = c.post("/api/sample", data={"label": "1", "n": "16", "seed": "5"}).get_json()
    assert _decode_data_url(r["image"], "image/png") == models.prior.sample(1, 16, seed=5)  # the form's class, count, seed

    r = c.post("/api/convert", data={"example": "tone.wav", "speaker": models.voice.speakers[-1]}).get_json()
    sr, y = wavfile.read(io.BytesIO(_decode_data_url(r["audio"], "audio/wav")))
    assert sr == models.voice.cfg.model.sample_rate and len(y) == 4000  # the input's length, in the other voice
    r = c.post("/api/convert", data={"wav": (io.BytesIO(_wav()), "a.wav"), "speaker": models.voice.speakers[0]})
    assert r.status_code == 200

    r = c.post("/api/generate", data={"caption": "a red 3 above a small blue sneaker", "n": "4", "seed": "2"}).get_json()
    assert _decode_data_url(r["image"], "image/png") == models.scenes.generate("a red 3 above a small blue sneaker", 4, seed=2)


def test_bad_input_is_a_400_with_one_line_and_a_missing_model_a_404(models):
    c = create_app(models).test_client()
    for url, data in (("/api/compress", {"image": (io.BytesIO(b"not an image"), "x.png")}),
                      ("/api/compress", {}),
                      ("/api/sample", {"label": "99"}),
                      ("/api/sample", {"label": "x"}),
                      ("/api/convert", {"example": "nope.wav", "speaker": "a"}),
                      ("/api/convert", {"wav": (io.BytesIO(b"RIFF...."), "a.wav"), "speaker": models.voice.speakers[0]}),
                      ("/api/convert", {"example": "tone.wav", "speaker": "nobody"}),
                      ("/api/generate", {"caption": "   "})):
        r = c.post(url, data=data)
        err = r.get_json()["error"]
        assert r.status_code == 400 and err and "\n" not in err, (url, err)
    empty = create_app(Models(missing={"prior": "zoo:fashion-mnist is not installed"})).test_client()
    r = empty.post("/api/sample", data={"label": "1"})
    assert r.status_code == 404 and "not installed" in r.get_json()["error"]
    assert empty.get("/").status_code == 200


CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@pytest.mark.slow
@pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")
def test_the_page_in_a_real_browser(models, tmp_path):
    """Headless Chromium uses every tab as a person would: upload or pick, submit, wait, check what came back decodes
    and has the right size; a screenshot of each tab is left in tmp_path."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, create_app(models), threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/"
    (tmp_path / "photo.png").write_bytes(_photo())
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
              "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,900",
              "--autoplay-policy=no-user-gesture-required"):
        opts.add_argument(a)
    drv = webdriver.Chrome(service=Service(DRIVER), options=opts)
    try:
        drv.get(url)
        wait = WebDriverWait(drv, 120)
        wait.until(lambda d: d.execute_script("return document.body.dataset.ready === '1'"))

        def submit(tab: str, fill=lambda: None):
            drv.find_element(By.CSS_SELECTOR, f"nav button[data-tab='{tab}']").click()
            fill()
            drv.find_element(By.ID, f"{tab}-go").click()
            wait.until(lambda d: d.find_element(By.ID, f"{tab}-status").get_attribute("data-done")
                       or d.find_element(By.ID, f"{tab}-status").get_attribute("data-failed"))
            status = drv.find_element(By.ID, f"{tab}-status")
            assert status.get_attribute("data-done") == "1", status.text
            drv.save_screenshot(str(tmp_path / f"{tab}.png"))

        submit("codec", lambda: drv.find_element(By.ID, "codec-file").send_keys(str(tmp_path / "photo.png")))
        sizes = drv.execute_script("return [...document.querySelectorAll('#codec-out img.ours')].map(i => [i.naturalWidth, i.naturalHeight])")
        assert sizes == [[56, 40], [56, 40]]  # every quality decoded, at the photo's size

        submit("prior", lambda: Select(drv.find_element(By.ID, "prior-label")).select_by_value("1"))
        assert drv.execute_script("return document.getElementById('prior-out').naturalWidth") > 0

        submit("voice", lambda: Select(drv.find_element(By.ID, "voice-example")).select_by_value("tone.wav"))
        wait.until(lambda d: d.execute_script("return document.getElementById('voice-audio').readyState >= 1"))
        assert drv.execute_script("return document.getElementById('voice-audio').duration") == pytest.approx(0.5, abs=0.01)

        submit("scenes")
        assert drv.execute_script("return document.getElementById('scenes-out').naturalWidth") > 0
        assert not drv.execute_script("return [...document.scripts].some(s => s.src) || [...document.querySelectorAll('link')].length")
    finally:
        drv.quit()
        server.shutdown()
