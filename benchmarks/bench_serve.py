"""The demo page (`vqvae serve`) with the shipped models: the server's response time per action, and a screenshot of
each tab in headless Chromium.

    python benchmarks/bench_serve.py [--repeats 5] [--docs docs/serve] [--update-md BENCHMARKS.md]

Prints JSON. Needs Debian's chromium and chromium-driver for the screenshots (the timings do not).
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import shutil
import statistics
import threading
import time
from pathlib import Path

import torch
from PIL import Image

from vqvae.serve import handlers
from vqvae.serve.app import create_app

KODAK = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "kodak"
FSDD = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "fsdd" / "recordings"


def photo() -> bytes:
    """A Kodak image (evaluation only), or a gradient where Kodak is missing."""
    files = sorted(KODAK.glob("*.png"))
    if files:
        return files[0].read_bytes()
    buf = io.BytesIO()
    Image.linear_gradient("L").convert("RGB").resize((512, 384)).save(buf, format="PNG")
    return buf.getvalue()


def time_actions(models, repeats: int) -> dict:
    c = create_app(models).test_client()
    speaker = models.voice.speakers[-1] if models.voice else None
    wav = (FSDD / "3_jackson_0.wav").read_bytes() if (FSDD / "3_jackson_0.wav").is_file() else None
    actions = {
        "compress (every quality, JPEG and WebP matched)": ("codec", "/api/compress", lambda: {"image": (io.BytesIO(photo()), "p.png")}),
        "sample 16 of a class": ("prior", "/api/sample", lambda: {"label": "3", "n": "16"}),
        "convert one FSDD test clip (3_jackson_0.wav)": ("voice", "/api/convert", lambda: {"wav": (io.BytesIO(wav), "a.wav"), "speaker": speaker}),
        "generate 8 scenes": ("scenes", "/api/generate", lambda: {"caption": "a red 3 above a small blue sneaker", "n": "8"}),
    }
    out = {}
    for name, (tab, url, data) in actions.items():
        if getattr(models, tab) is None or (tab == "voice" and wav is None):
            out[name] = {"ready": False, "why": models.missing.get(tab, "no input")}
            continue
        times = []
        for _ in range(repeats + 1):  # the first call warms up
            t = time.perf_counter()
            r = c.post(url, data=data())
            assert r.status_code == 200, r.get_json()
            times.append(time.perf_counter() - t)
        out[name] = {"ready": True, "median_s": round(statistics.median(times[1:]), 3), "first_s": round(times[0], 3)}
    return out


def screenshots(models, docs: Path) -> list[str]:
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        return []
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, create_app(models), threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
              "--disable-sync", "--no-first-run", "--window-size=1100,800", "--hide-scrollbars"):
        opts.add_argument(a)
    drv = webdriver.Chrome(service=Service(driver), options=opts)
    docs.mkdir(parents=True, exist_ok=True)
    shots = []
    try:
        drv.get(f"http://127.0.0.1:{server.server_port}/")
        wait = WebDriverWait(drv, 300)
        wait.until(lambda d: d.execute_script("return document.body.dataset.ready === '1'"))
        tmp = docs / "_photo.png"
        tmp.write_bytes(photo())
        fills = {"codec": lambda: drv.find_element(By.ID, "codec-file").send_keys(str(tmp.resolve())),
                 "prior": lambda: Select(drv.find_element(By.ID, "prior-label")).select_by_value("3"),
                 "voice": lambda: Select(drv.find_element(By.ID, "voice-speaker")).select_by_value(models.voice.speakers[1]),
                 "scenes": lambda: None}
        for tab, fill in fills.items():
            drv.find_element(By.CSS_SELECTOR, f"nav button[data-tab='{tab}']").click()
            if getattr(models, tab) is not None and (tab != "voice" or models.examples):
                fill()
                drv.find_element(By.ID, f"{tab}-go").click()
                wait.until(lambda d: d.find_element(By.ID, f"{tab}-status").get_attribute("data-done")
                           or d.find_element(By.ID, f"{tab}-status").get_attribute("data-failed"))
            path = docs / f"{tab}.png"
            drv.save_screenshot(str(path))
            shots.append(str(path))
        tmp.unlink()
    finally:
        drv.quit()
        server.shutdown()
    return shots


def to_markdown(res: dict) -> str:
    lines = [f"`python benchmarks/bench_serve.py` ({res['date']}, CPU: {res['cpu']}, {res['threads']} threads, torch {res['torch']})", "",
             "| action | server time, median of the repeats | first call |", "|---|---|---|"]
    for name, r in res["actions"].items():
        lines.append(f"| {name} | {r['median_s']:.2f} s | {r['first_s']:.2f} s |" if r["ready"] else f"| {name} | not measured: {r['why']} | |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--docs", default="docs/serve")
    ap.add_argument("--update-md")
    args = ap.parse_args()
    models = handlers.load_models()
    if models.voice is not None and not models.examples and FSDD.is_dir():
        models.examples = {p.name: p.read_bytes() for p in sorted(FSDD.glob("*_jackson_0.wav"))[:3]}
    res = {"date": time.strftime("%Y-%m-%d"), "cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
           "torch": torch.__version__, "actions": time_actions(models, args.repeats), "screenshots": screenshots(models, Path(args.docs))}
    print(json.dumps(res, indent=2))
    if args.update_md:
        md = Path(args.update_md)
        text, start, end = md.read_text(), "<!-- bench_serve:start -->", "<!-- bench_serve:end -->"
        block = f"{start}\n{to_markdown(res)}{end}"
        md.write_text(text[: text.index(start)] + block + text[text.index(end) + len(end):] if start in text else text.rstrip() + "\n\n" + block + "\n")


if __name__ == "__main__":
    main()
