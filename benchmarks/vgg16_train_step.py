"""VGG16 training on the CPU: one optimizer step of the whole network (scratch, finetune-all), float32 against
bf16 autocast (what `accelerate launch --mixed_precision bf16` runs), NCHW against channels-last.

Each way trains its own copy of the same model in alternating rounds, so that every way sees the same machine;
the figure is the median seconds per image of its steps. bf16 pays only on a CPU with native bf16
(AVX512-BF16, AMX): without it oneDNN emulates bf16 and it is several times slower.

    python benchmarks/vgg16_train_step.py --side 224 --batch 16 --rounds 5
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
import torch.nn.functional as F

from tl_hub.models import create_model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--side", type=int, default=224, help="input size in pixels")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    torch.manual_seed(0)
    base = create_model(
        "vgg16", num_classes=2, in_chans=3, img_size=args.side, drop_rate=0.0, pooled_head=True
    )
    x = torch.randn(args.batch, 3, args.side, args.side)
    y = torch.randint(0, 2, (args.batch,))
    ways = {}
    for layout in ("NCHW", "channels-last"):
        for bf16 in (False, True):
            model = copy.deepcopy(base).train()
            inputs = x
            if layout == "channels-last":
                model = model.to(memory_format=torch.channels_last)
                inputs = x.contiguous(memory_format=torch.channels_last)
            optimizer = torch.optim.AdamW([q for q in model.parameters() if q.requires_grad], lr=1e-4)

            def step(model=model, inputs=inputs, optimizer=optimizer, bf16=bf16) -> None:
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                    loss = F.cross_entropy(model(inputs), y)
                loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)

            ways[f"{layout}, {'bf16 autocast' if bf16 else 'float32'}"] = step
    for fn in ways.values():  # warm-up: oneDNN picks its kernels
        fn()
    times: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(args.rounds):
        for name, fn in ways.items():
            start = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - start) / args.batch)
    print(
        f"VGG16 (pooled head), one AdamW step on {args.batch} images at {args.side}x{args.side}, "
        f"{torch.get_num_threads()} threads, native bf16: {torch.ops.mkldnn._is_mkldnn_bf16_supported()}; "
        f"median of {args.rounds} alternating rounds:"
    )
    baseline = statistics.median(next(iter(times.values())))
    for name, values in times.items():
        t = statistics.median(values)
        print(
            f"  {name:<28} {t * 1000:7.1f} ms per image  {baseline / t:5.2f}x  "
            f"(rounds {min(values) * 1000:.0f}-{max(values) * 1000:.0f} ms)"
        )


if __name__ == "__main__":
    main()
