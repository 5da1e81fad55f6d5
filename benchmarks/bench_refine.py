"""Speed of the per-pair latent-code refinement (issue 13) of a default-size CVAE.

Times `CVAERegistrar(model, refine=N).register()` (encode, N Adam steps of decode ->
exp(±v/2) -> warp -> LCC with its backward, then exp(±v), warp and det J) on
100×100 pairs with a randomly initialised `ModelConfig()` network, early
stopping off, for a batch of 16 pairs and of 1 pair, N = 0 (the plain one-pass
registration), 10 and 50, z only and with the decoder's last layer adapted per
pair. Prints seconds per pair and the milliseconds one refinement step adds
(per batch and per pair); and one objective-and-gradient step on the
batch-norm-folded inference copy next to the same step on the plain network.

    .venv/bin/python benchmarks/bench_refine.py [--device cpu|cuda] [--repeats 3] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import warnings

import torch

from timing import compare_times


def main() -> None:
    from structreg.methods.ours import CVAERegistrar
    from structreg.models.cvae import CVAERegistration, ModelConfig

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batches", default="16,1", help="comma-separated batch sizes")
    p.add_argument("--steps", default="0,10,50", help="comma-separated refinement steps")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    device = torch.device(args.device)
    size = (100, 100)
    torch.manual_seed(0)
    model = CVAERegistration(ModelConfig(image_size=size)).to(device).eval()
    g = torch.Generator().manual_seed(0)
    steps = [int(s) for s in args.steps.split(",")]
    batches = [int(b) for b in args.batches.split(",")]

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}, "
        f"load average {load:.1f}, CVAE {model.num_parameters():,} parameters, "
        f"images {size[0]}x{size[1]}, early stopping off"
    )
    print("| pairs | adapted layers | steps | s / pair | ms / step (batch) | ms / step / pair |")
    print("|---|---|---|---|---|---|")
    for n in batches:
        m = torch.rand(n, 1, *size, generator=g).to(device)
        f = torch.rand(n, 1, *size, generator=g).to(device)
        fns = {}
        for k in (0, 1):
            for s in steps:
                if s == 0 and k:
                    continue
                registrar = CVAERegistrar(
                    model, batch_size=n, refine=s, refine_tol=0.0, adapt_decoder=k
                )
                fns[(k, s)] = lambda r=registrar, m=m, f=f: r.register(m, f)
        times = compare_times(fns, args.repeats, device)
        plain = times.get((0, 0))
        for (k, s), t in times.items():
            per_step = (t - plain) / s * 1e3 if s and plain is not None else float("nan")
            print(f"| {n} | {k} | {s} | {t / n:.3f} | {per_step:.1f} | {per_step / n:.1f} |")

    _folded_vs_plain(model, batches[0], size, device, g)


def _folded_vs_plain(model, n: int, size: tuple, device, g) -> None:
    """One objective + gradient step (batch ``n``): folded inference copy vs the plain net."""
    from structreg.methods.refine import Objective
    from structreg.models.inference import inference_copy

    m = torch.rand(n, 1, *size, generator=g).to(device)
    f = torch.rand(n, 1, *size, generator=g).to(device)
    objective = Objective()
    nets = {"folded": inference_copy(model), "plain": model}
    for p_ in model.parameters():
        p_.requires_grad_(False)

    def step(net):
        z = torch.randn(n, model.config.latent_dim, device=device, requires_grad=True)
        v = net.decoder(z, m)
        torch.autograd.grad(objective.per_pair(v, z, m, f).sum(), [z])

    t = compare_times({k: (lambda net=net: step(net)) for k, net in nets.items()}, 5, device)
    print(
        f"objective + gradient step, batch {n}: folded inference copy "
        f"{t['folded'] * 1e3:.0f} ms, plain network {t['plain'] * 1e3:.0f} ms"
    )


if __name__ == "__main__":
    main()
