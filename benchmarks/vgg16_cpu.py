"""VGG16 on the CPU: where the time goes, and what the feature cache saves.

1. This CPU's own float32 matmul peak (the best of 2048-4096 square products), measured in the same
   alternating rounds as the frozen base's forward pass, so that both see the same machine: tl_hub's feature
   extraction (`tl_hub.training.features.extract`: uint8 images in, preprocessing included, channels_last)
   with the network run on 1, 2, 4 or 16 images at a time, and plain PyTorch (NCHW, batch 16) for reference.
   Each in images/s and as a share of the peak, with VGG16's FLOPs counted by PyTorch (2 per multiply-add).
   Then the Space's case, one image through the whole network, fp32 channels_last; `--bf16` adds bf16
   autocast (tl_hub's extraction where the CPU has native bf16, against the bf16 matmul peak too) and
   `--compile` torch.compile, each with how far its features move from fp32's.
2. feature-extract training on the study's protocol (2,500 images, 100 epochs), measured side by side on a
   reduced size and projected: recomputing the frozen base every epoch (what a Keras generator loop does)
   against tl_hub's cache (the base once per image, then epochs over the head only).

    python benchmarks/vgg16_cpu.py --images 16 --batch 16 --rounds 3
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from tl_hub.config import AugConfig, TransferConfig
from tl_hub.data.augment import BatchAugment
from tl_hub.models import create_model, get_architecture
from tl_hub.recipes import get_recipe
from tl_hub.scoring import feature_inputs, image_inputs
from tl_hub.training.features import CPU_CHUNK, extract
from tl_hub.training.inputs import HeadOnly
from tl_hub.training.strategies import TransferPlan

RECIPE = get_recipe("vgg16-catsdogs").config
PRE = RECIPE.preprocess
STUDY_IMAGES, STUDY_EPOCHS = 2500, 100
CPU = torch.device("cpu")


def timed(fn, repeats: int = 3) -> float:
    fn()  # warm-up: oneDNN picks its kernels on the first call
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def once(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def matmul_gflops(operands: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
    """GFLOPS of the fastest of these square products (float32, or bf16 operands), one timing each: the
    machine's ceiling for dense work at this moment."""
    return max(2 * a.shape[0] ** 3 / once(lambda a=a, b=b: a @ b) / 1e9 for a, b in operands)


def forward_gflops(module: torch.nn.Module, x: torch.Tensor) -> float:
    """GFLOPs of one forward pass of `module` on the single image `x`, counted by PyTorch."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        module(x)
    return counter.get_total_flops() / 1e9


def relative_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.float() - b.float()).norm() / b.float().norm()).item()


def base_forward(model: torch.nn.Module, images: torch.Tensor, args: argparse.Namespace) -> None:
    """Section 1: the frozen base's forward pass, each way in alternating rounds with the matmul peak."""
    x = image_inputs(PRE)(images[: args.batch])
    gflops = forward_gflops(model.features, x[:1])
    operands = [(torch.randn(n, n), torch.randn(n, n)) for n in (2048, 3072, 4096)]
    ways = {
        f"tl_hub extract, {chunk} image{'s' if chunk > 1 else ''} at a time"
        + (" (default)" if chunk == CPU_CHUNK else ""): (
            lambda chunk=chunk: extract(model, images[: args.batch], PRE, CPU, chunk=chunk)
        )
        for chunk in (1, 2, 4, 16)
    }

    def plain() -> None:
        with torch.inference_mode():
            model.features(x)

    reference = extract(model, images[: args.batch], PRE, CPU, chunk=args.batch)
    ways = {f"plain PyTorch, NCHW, batch {args.batch}": plain, **ways}
    bf16_ways = {}
    if args.bf16:  # tl_hub's default where the CPU has native bf16 (features.bf16_pays)
        bf16_ways = {
            f"tl_hub extract, bf16 autocast, {chunk} at a time": (
                lambda chunk=chunk: extract(model, images[: args.batch], PRE, CPU, bf16=True, chunk=chunk)
            )
            for chunk in (CPU_CHUNK, 16)
        }
        ways |= bf16_ways
    if args.compile:
        compiled = torch.compile(model.features)

        def run_compiled() -> None:  # like the default extraction: CPU_CHUNK images at a time
            with torch.inference_mode():
                for part in x.contiguous(memory_format=torch.channels_last).split(CPU_CHUNK):
                    compiled(part)

        ways[f"torch.compile, channels_last, {CPU_CHUNK} at a time"] = run_compiled

    def measure(name: str, fn) -> float:
        """Seconds of one call of `fn`, the model in the layout that way runs in."""
        layout = torch.contiguous_format if name.startswith("plain") else torch.channels_last
        model.to(memory_format=layout)
        return once(fn)

    rates: dict[str, list[float]] = {name: [] for name in ways}
    peaks, bf16_peaks = [], []
    bf16_operands = [(a.bfloat16(), b.bfloat16()) for a, b in operands] if args.bf16 else []
    for name, fn in ways.items():  # warm-up: kernels picked, compile done
        measure(name, fn)
    for _ in range(args.rounds):
        peaks.append(matmul_gflops(operands))
        if bf16_operands:
            bf16_peaks.append(matmul_gflops(bf16_operands))
        for name, fn in ways.items():
            rates[name].append(args.batch / measure(name, fn))
    peak = statistics.median(peaks)
    print(
        f"this CPU's float32 matmul peak ({torch.get_num_threads()} threads, median of {args.rounds} rounds "
        f"of the best of 2048-4096 square products): {peak:.0f} GFLOPS "
        f"(rounds {min(peaks):.0f}-{max(peaks):.0f})"
    )
    bf16_peak = statistics.median(bf16_peaks) if bf16_peaks else None
    if bf16_peak:
        print(
            f"this CPU's bf16 matmul peak (the same products on bf16 operands; native bf16: "
            f"{torch.ops.mkldnn._is_mkldnn_bf16_supported()}): {bf16_peak:.0f} GFLOPS "
            f"(rounds {min(bf16_peaks):.0f}-{max(bf16_peaks):.0f})"
        )
    print(
        f"VGG16 conv base forward, 224x224, {args.batch} images, {gflops:.2f} GFLOPs per image "
        "(PyTorch's count):"
    )
    base = statistics.median(rates[next(iter(rates))])
    for name, values in rates.items():
        r = statistics.median(values)
        share = f"{r * gflops / peak:4.0%} of the fp32 peak"
        if name in bf16_ways:
            share += f", {r * gflops / bf16_peak:4.0%} of the bf16 peak"
        print(
            f"  {name:<46} {r:6.2f} images/s  {r / base:5.2f}x  {r * gflops:6.0f} GFLOPS = "
            f"{share}  (rounds {min(values):.2f}-{max(values):.2f})"
        )
    model.to(memory_format=torch.channels_last)
    for chunk in (1, 2, 4):
        diff = relative_l2(extract(model, images[: args.batch], PRE, CPU, chunk=chunk), reference)
        print(f"  features, {chunk} at a time vs the whole batch: relative L2 difference {diff:.1e}")
    if args.compile:
        with torch.inference_mode():
            diff = relative_l2(compiled(x.contiguous(memory_format=torch.channels_last)), reference)
        print(f"  torch.compile features vs eager: relative L2 difference {diff:.1e}")
    single_image(model, x[:1], peak, args.bf16)
    if args.bf16:
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            b16 = model.features(x.contiguous(memory_format=torch.channels_last))
        print(f"  bf16 vs fp32 features: relative L2 difference {relative_l2(b16, reference):.4f}")


def single_image(model: torch.nn.Module, x: torch.Tensor, peak: float, bf16: bool) -> None:
    """The Space's case: the whole network on one image, channels_last, fp32 (and bf16 with --bf16)."""
    gflops = forward_gflops(model, x)
    x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        f32 = model(x)
        for use_bf16 in (False, True) if bf16 else (False,):

            def run(use_bf16: bool = use_bf16) -> None:
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=use_bf16):
                    model(x)

            seconds = timed(run, repeats=5)
            print(
                f"  one image, whole network ({gflops:.2f} GFLOPs), {'bf16' if use_bf16 else 'fp32'}: "
                f"{seconds * 1000:6.1f} ms ({1 / seconds:5.2f} images/s, "
                f"{gflops / seconds / peak:4.0%} of the peak)"
            )
        if bf16:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                print(f"  bf16 vs fp32 logits: relative L2 difference {relative_l2(model(x), f32):.4f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=16, help="images of the cache comparison (section 2)")
    p.add_argument("--batch", type=int, default=16, help="images per forward-pass timing (section 1)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--bf16", action="store_true", help="also bf16 autocast (slow without native bf16)")
    p.add_argument("--compile", action="store_true", help="also torch.compile")
    args = p.parse_args()
    torch.manual_seed(0)
    model = create_model("vgg16", num_classes=2, in_chans=3, img_size=224, drop_rate=0.5)
    count = max(args.images, args.batch)
    images = torch.randint(0, 256, (count, 3, 224, 224), dtype=torch.uint8)
    model.eval()
    base_forward(model, images, args)
    images, labels = images[: args.images], torch.arange(args.images) % 2

    # feature-extract, side by side on args.images images.
    arch = get_architecture("vgg16")
    plan = TransferPlan(model, arch.base, TransferConfig(strategy="feature-extract"), lr=1e-4)
    opt = torch.optim.SGD(plan.groups, lr=1e-4, momentum=0.9)
    plan.start_epoch(model, 1)
    prepare = image_inputs(PRE, BatchAugment(AugConfig(rotation=20, hflip=True)))
    gen = torch.Generator().manual_seed(0)

    def uncached_epoch() -> None:
        for i in range(0, args.images, args.batch):
            loss = F.cross_entropy(
                model(prepare(images[i : i + args.batch], gen)), labels[i : i + args.batch]
            )
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

    head = HeadOnly(model, arch)
    start = time.perf_counter()
    feats = extract(model, images, PRE, CPU)
    extract_s = time.perf_counter() - start
    plan.start_epoch(model, 1)

    # A head epoch over the study's 2,500 images (the cached maps repeated), at the recipe's batch size.
    study_feats = feats.repeat(STUDY_IMAGES // args.images + 1, 1, 1, 1)[:STUDY_IMAGES]
    study_labels = torch.arange(STUDY_IMAGES) % 2
    head_batch = RECIPE.train.batch_size

    def head_epoch(forward=head) -> None:
        for i in range(0, STUDY_IMAGES, head_batch):
            loss = F.cross_entropy(
                forward(feature_inputs(study_feats[i : i + head_batch])), study_labels[i : i + head_batch]
            )
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

    uncached_s = timed(uncached_epoch, repeats=2)
    head_s = timed(head_epoch, repeats=3)
    conv_head_s = timed(lambda: head_epoch(model.forward_head), repeats=3)  # timm's 7x7-conv formulation
    per_image = {
        "uncached epoch": uncached_s / args.images,
        "extract": extract_s / args.images,
        "head epoch": head_s / STUDY_IMAGES,
    }
    uncached_total = per_image["uncached epoch"] * STUDY_IMAGES * STUDY_EPOCHS
    cached_total = (per_image["extract"] + per_image["head epoch"] * STUDY_EPOCHS) * STUDY_IMAGES
    print(
        f"feature-extract training (per image; the base measured on {args.images} images, batch {args.batch};"
    )
    print(f"the head on {STUDY_IMAGES} cached maps, batch {head_batch}):")
    print(f"  recompute the base every epoch: {per_image['uncached epoch'] * 1000:8.1f} ms per image-epoch")
    print(f"  cache: extract once           : {per_image['extract'] * 1000:8.1f} ms per image")
    print(f"  cache: head epoch             : {per_image['head epoch'] * 1000:8.2f} ms per image-epoch")
    print(f"    (timm's forward_head, 7x7 conv: {conv_head_s / STUDY_IMAGES * 1000:.2f} ms per image-epoch)")
    print(f"projected to the study's protocol ({STUDY_IMAGES} images, {STUDY_EPOCHS} epochs):")
    print(
        f"  recompute: {uncached_total / 3600:6.2f} h   cache: {cached_total / 60:6.1f} min   "
        f"speed-up {uncached_total / cached_total:.0f}x"
    )


if __name__ == "__main__":
    main()
