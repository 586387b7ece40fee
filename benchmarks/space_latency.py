"""The Space's speed: per-request latency and throughput of both endpoints, and VGG16's fast path.

    python benchmarks/space_latency.py [--signs-model DIR] [--pets-model DIR] [--requests 40] [--clients 8]

1. Server side: the endpoint's own function (read the upload, preprocess, forward, top-k) timed in-process,
   p50 / p95 over --requests calls, for the signs model and for VGG16 eager and compiled.
2. VGG16's fast path against a plain fp32 timm forward (`timm.create_model("vgg16")`, eval, no_grad, NCHW)
   of the same preprocessed image, measured in alternating rounds; and top-1 agreement of the compiled and
   eager models on --images test images.
3. Through gradio_client: round-trip p50 / p95 per endpoint, then throughput with --clients concurrent
   clients.

Without --signs-model / --pets-model, untrained releases are written to a temporary directory: speed does not
depend on the weights. The signs model is then the quickstart's (cnn-synthetic: SignCNN predicting on its
five test-time views, what the Space serves with no flags), the pets model the vgg16-catsdogs recipe's network
at 224x224.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import timm
import torch
from PIL import Image

from tl_hub.data.gtsrb import GTSRB_CLASS_NAMES
from tl_hub.data.synthetic import render_sign
from tl_hub.models import create_model
from tl_hub.recipes import get_recipe
from tl_hub.release.config import ReleaseConfig
from tl_hub.release.files import save_pretrained

ROOT = Path(__file__).resolve().parents[1]


def load_app():
    spec = importlib.util.spec_from_file_location("tl_hub_space_app", ROOT / "spaces" / "app.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def untrained_release(recipe_name: str, labels: list[str], directory: Path) -> Path:
    """Random weights in the recipe's architecture and preprocessing: latency does not depend on training."""
    run = get_recipe(recipe_name).config
    torch.manual_seed(0)
    model = create_model(
        run.model.architecture,
        num_classes=len(labels),
        in_chans=run.preprocess.channels,
        img_size=run.preprocess.input_size,
        drop_rate=run.model.drop_rate,
    )
    return save_pretrained(model, directory, ReleaseConfig.from_run(run, labels))


def percentiles(times: list[float]) -> str:
    ms = sorted(t * 1000 for t in times)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    return f"p50 {statistics.median(ms):7.1f} ms   p95 {p95:7.1f} ms"


def timed(fn, n: int) -> list[float]:
    fn()  # warm-up
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def photos(directory: Path, n: int, size: int) -> list[Path]:
    """Test images: rendered signs and random-texture photos, as JPEG files like a user's upload."""
    paths = []
    rng = np.random.default_rng(0)
    for i in range(n):
        if i % 2:
            image = render_sign(i % 43, np.random.default_rng(i), size)
        else:
            image = Image.fromarray(rng.integers(0, 256, (size * 3 // 4, size, 3), dtype=np.uint8))
        path = directory / f"photo{i}.jpg"
        image.save(path, quality=90)
        paths.append(path)
    return paths


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--signs-model", help="signs release directory (default: an untrained cnn-synthetic one)")
    p.add_argument("--pets-model", help="VGG16 release directory (default: an untrained one)")
    p.add_argument("--requests", type=int, default=40)
    p.add_argument("--images", type=int, default=100, help="test images for the top-1 agreement check")
    p.add_argument("--clients", type=int, default=8)
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="tl_hub_bench_"))
    signs_dir = args.signs_model or untrained_release("cnn-synthetic", list(GTSRB_CLASS_NAMES), tmp / "signs")
    pets_dir = args.pets_model or untrained_release("vgg16-catsdogs", ["cat", "dog"], tmp / "pets")
    app = load_app()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")

    files = photos(tmp, args.images, 400)
    upload = str(files[1])  # a 400x400 JPEG of a sign

    start = time.perf_counter()
    signs = app.ModelSlot(signs_dir)
    pets_eager = app.ModelSlot(pets_dir)
    pets_fast = app.ModelSlot(pets_dir, compile=True)
    for slot in (signs, pets_eager):
        slot.get()
    loaded = time.perf_counter()
    pets_fast.get()  # includes compiling
    print(f"load: eager models {loaded - start:.1f} s, compiled VGG16 {time.perf_counter() - loaded:.1f} s")

    print("\n1. Server side, the endpoint's function (read + preprocess + forward + top-k):")
    signs_predictor = signs.get()  # loaded above: its release config names the network and its views
    views = len(signs_predictor.preprocess.tta_scales)
    signs_name = signs_predictor.config.architecture + (f" {views + 1} views" if views else "")
    for name, slot in [(signs_name, signs), ("VGG16 eager", pets_eager), ("VGG16 compiled", pets_fast)]:
        print(f"   {name:16s} {percentiles(timed(lambda s=slot: app.classify(s, upload), args.requests))}")

    print("\n2. VGG16 forward, batch 1, against a plain fp32 timm forward (alternating rounds):")
    plain = timm.create_model("vgg16", num_classes=2).eval()
    x = pets_fast.get().inputs([upload])
    runs = {
        "plain timm fp32": lambda: plain(x),
        "tl_hub eager": lambda: pets_eager.get().model(x),
        "tl_hub compiled": lambda: pets_fast.get().forward(x),
    }
    times: dict[str, list[float]] = {k: [] for k in runs}
    with torch.inference_mode():
        for fn in runs.values():
            fn()
        for _ in range(max(1, args.requests // 4)):
            for name, fn in runs.items():
                times[name] += timed(fn, 3)[1:]
    base = statistics.median(times["plain timm fp32"])
    for name, t in times.items():
        print(f"   {name:16s} {percentiles(t)}   {base / statistics.median(t):.2f}x")
    same = 0
    for path in files:
        eager_top = next(iter(pets_eager.get()(Image.open(path), 1)))
        fast_top = next(iter(pets_fast.get()(Image.open(path), 1)))
        same += eager_top == fast_top
    diff = (pets_fast.get().logits([upload]) - pets_eager.get().logits([upload])).abs().max()
    print(f"   top-1 identical on {same}/{len(files)} images; max |logit difference| {float(diff):.1e}")

    print("\n3. Through gradio_client (HTTP upload + queue + SSE), app on 127.0.0.1:")
    from gradio_client import Client, handle_file

    demo = app.build_demo(signs, pets_fast, examples_dir=tmp / "examples")
    url = app.serve(demo, "127.0.0.1", block=False)
    try:
        client = Client(url, verbose=False)
        for endpoint in ("/classify_sign", "/classify_pet"):
            t = timed(lambda e=endpoint: client.predict(handle_file(upload), api_name=e), args.requests)
            print(f"   {endpoint:16s} {percentiles(t)}")
        for endpoint in ("/classify_sign", "/classify_pet"):
            clients = [Client(url, verbose=False) for _ in range(args.clients)]
            per_client = max(1, args.requests // args.clients)

            def work(c: Client, e: str = endpoint, n: int = per_client) -> None:
                for i in range(n):
                    c.predict(handle_file(str(files[i % len(files)])), api_name=e)

            start = time.perf_counter()
            with ThreadPoolExecutor(args.clients) as pool:
                list(pool.map(work, clients))
            seconds = time.perf_counter() - start
            n = per_client * args.clients
            rate = f"{n / seconds:6.1f} requests/s ({n} in {seconds:.1f} s)"
            print(f"   {endpoint:16s} {args.clients} concurrent clients: {rate}")
    finally:
        demo.close()


if __name__ == "__main__":
    main()
