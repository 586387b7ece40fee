"""VGG16 throughput on a GPU, as a fraction of the chip's peak: feature extraction and finetune-all training.

Both in bf16 autocast with channels_last, on random 224x224 images (speed does not depend on the pixels).
VGG16's forward is 15.5 GMACs per image (31 GFLOPs); a training step costs about three forwards.

    python benchmarks/vgg16_gpu.py --peak-tflops 989   # an H100/H200's dense bf16 peak
    python benchmarks/vgg16_gpu.py --device cpu --batch 4 --steps 2 --peak-tflops 0.2   # a smoke run
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from tl_hub.models import create_model

FORWARD_GFLOPS = 2 * 15.5  # per 224x224 image


def rate(step, batch: int, steps: int, device: torch.device) -> float:
    """Images per second of `step`, after warm-up, synchronizing the device around the timed steps."""
    for _ in range(3):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return batch * steps / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--peak-tflops", type=float, required=True, help="the chip's dense bf16 peak")
    p.add_argument("--compile", action="store_true")
    args = p.parse_args()
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = True
    model = create_model("vgg16", num_classes=2, in_chans=3, img_size=224, drop_rate=0.5).to(device)
    model = model.to(memory_format=torch.channels_last)
    forward_features = torch.compile(model.forward_features) if args.compile else model.forward_features
    train_model = torch.compile(model) if args.compile else model
    x = torch.randn(args.batch, 3, 224, 224, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 2, (args.batch,), device=device)
    opt = torch.optim.SGD([q for q in model.parameters() if q.requires_grad], lr=1e-4, momentum=0.9)

    def extract() -> None:
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16):
            forward_features(x)

    def train_step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss = F.cross_entropy(train_model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    model.eval()
    extract_rate = rate(extract, args.batch, args.steps, device)
    model.train()
    train_rate = rate(train_step, args.batch, args.steps, device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"{name}, batch {args.batch}, bf16 autocast + channels_last{', compiled' if args.compile else ''}:")
    for what, r, flops in (
        ("feature extraction (conv base forward)", extract_rate, FORWARD_GFLOPS),
        ("finetune-all training step", train_rate, 3 * FORWARD_GFLOPS),
    ):
        print(f"  {what:<40} {r:9.1f} images/s  {r * flops / 1e3 / args.peak_tflops:6.1%} of peak")


if __name__ == "__main__":
    main()
