"""Speed of the CVAE registration model next to VoxelMorph-2's forward pass, in one run.

Prints: registration time per pair at batch 1 (encode -> z = μ -> decode ->
exponentiation -> warp, plus exp(-v) and det J as `register()` returns them),
the bare forward pass (moved image and displacement, what VoxelMorph's forward
returns), pairs per second at a large batch, and the training step time at
batch 50; and
the same forward pass of the `voxelmorph` package's U-Net (VoxelMorph-2 widths)
on the same input, with our time divided by theirs (< 1: faster).

    .venv/bin/python benchmarks/bench_model.py [--device cpu|cuda] [--repeats 10]
"""

from __future__ import annotations

import argparse
import warnings

import torch

from timing import compare_times


def main() -> None:
    from structreg.core.losses import kl_divergence, symmetric_lcc
    from structreg.methods.ours import CVAERegistrar
    from structreg.models.cvae import CVAERegistration, ModelConfig
    from structreg.models.inference import inference_copy
    from structreg.models.voxelmorph import VoxelMorph2

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--large-batch", type=int, default=256)
    args = p.parse_args()
    warnings.simplefilter("ignore")
    device = torch.device(args.device)
    size = (100, 100)
    model = CVAERegistration(ModelConfig(image_size=size)).to(device).eval()
    vxm = VoxelMorph2().to(device).eval()
    g = torch.Generator().manual_seed(0)

    def images(n):
        return (
            torch.rand(n, 1, *size, generator=g).to(device),
            torch.rand(n, 1, *size, generator=g).to(device),
        )

    rows = []
    for n in (1, args.large_batch):
        m, f = images(n)

        # default arguments bind this iteration's batch to each closure
        def vxm_forward(m=m, f=f):
            with torch.no_grad():
                return vxm(m, f)

        def ours_forward(m=m, f=f):
            # like for like with VoxelMorph's forward: moved image and field only
            with torch.no_grad():
                return inference_copy(model)(m, f, sample=False)

        def ours_register(n=n, m=m, f=f):
            return CVAERegistrar(model, batch_size=n).register(m, f)

        t = compare_times(
            {
                "ours": ours_register,
                "forward": ours_forward,
                "vxm": vxm_forward,
            },
            args.repeats,
            device,
        )
        rows.append((f"registration (`register()`), batch {n}", t["ours"], t["vxm"], n))
        rows.append((f"forward pass (moved + field), batch {n}", t["forward"], t["vxm"], n))

    model.train()
    vxm.train()
    m, f = images(50)
    opt = torch.optim.Adam(model.parameters(), lr=5e-4)
    opt_v = torch.optim.Adam(vxm.parameters(), lr=1e-4)

    def ours_step():
        opt.zero_grad()
        mu, logvar, _, v = model.sample_velocity(m, f, sample=True)
        loss = 82.0 * (1 - symmetric_lcc(f, m, v)) + 0.01 * kl_divergence(mu, logvar)
        loss.backward()
        opt.step()

    def vxm_step():
        from structreg.models.voxelmorph import voxelmorph_loss

        opt_v.zero_grad()
        loss, _, _ = voxelmorph_loss(vxm, m, f)
        loss.backward()
        opt_v.step()

    t = compare_times({"ours": ours_step, "vxm": vxm_step}, max(3, args.repeats // 2), device)
    rows.append(("training step, batch 50", t["ours"], t["vxm"], 50))

    print(
        f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}, "
        f"CVAE {model.num_parameters():,} parameters, VoxelMorph-2 "
        f"{sum(q.numel() for q in vxm.parameters()):,}"
    )
    print("| what | structreg (ms) | VoxelMorph-2 (ms) | ratio | structreg pairs/s |")
    print("|---|---|---|---|---|")
    for name, ours, theirs, n in rows:
        print(
            f"| {name} | {1e3 * ours:.1f} | {1e3 * theirs:.1f} | {ours / theirs:.2f} | "
            f"{n / ours:.0f} |"
        )


if __name__ == "__main__":
    main()
