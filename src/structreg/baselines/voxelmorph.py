"""VoxelMorph-2 baseline: the ``voxelmorph`` package's U-Net predicting a plain
(non-diffeomorphic) displacement, trained with NCC + λ_smooth · ‖∇u‖² (λ = 1.5 as
in the paper's comparison).

The U-Net needs spatial sizes divisible by ``2 ** len(nb_features)``; inputs are
zero-padded to that multiple and the field is cropped back, invisibly to the user
(voxel units are unchanged by padding).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..layers import evaluating
from ..ops import jacobian_det, warp
from ..registration import RegistrationResult


@dataclass
class VoxelMorphConfig:
    """Architecture and loss of the VoxelMorph-2 baseline.

    Attributes:
        ndim: spatial dimensions.
        nb_features: U-Net widths per level (VoxelMorph-2 encoder: 16, 32, 32, 32).
        smoothness: weight of the mean squared displacement gradient (paper: 1.5).
        ncc_window: side of the NCC window in voxels.
    """

    ndim: int = 2
    nb_features: tuple[int, ...] = (16, 32, 32, 32)
    smoothness: float = 1.5
    ncc_window: int = 9

    def to_dict(self) -> dict:
        d = asdict(self)
        d["nb_features"] = list(self.nb_features)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "VoxelMorphConfig":
        d = dict(d)
        d["nb_features"] = tuple(d.get("nb_features", cls.nb_features))
        return cls(**d)


def _require_voxelmorph():
    try:
        import voxelmorph
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("the VoxelMorph baseline needs the 'voxelmorph' package: "
                          "pip install 'structreg[baselines]'") from exc
    return voxelmorph


class VoxelMorph2(nn.Module):
    """``forward(moving, fixed)`` -> displacement ``(N, ndim, *S)`` in voxels.

    Shapes: ``moving``, ``fixed`` ``(N, 1, *S)`` for any ``S``.
    """

    def __init__(self, config: VoxelMorphConfig | None = None):
        super().__init__()
        self.config = config or VoxelMorphConfig()
        vxm = _require_voxelmorph()
        self.net = vxm.nn.models.VxmPairwise(
            ndim=self.config.ndim, source_channels=1, target_channels=1,
            nb_features=list(self.config.nb_features), integration_steps=0)
        self.multiple = 2 ** len(self.config.nb_features)

    def forward(self, moving: torch.Tensor, fixed: torch.Tensor) -> torch.Tensor:
        shape = moving.shape[2:]
        pad = []
        for s in reversed(shape):
            extra = (-s) % self.multiple
            pad += [extra // 2, extra - extra // 2]
        if any(pad):
            moving_p, fixed_p = F.pad(moving, pad), F.pad(fixed, pad)
        else:
            moving_p, fixed_p = moving, fixed
        disp = self.net(moving_p, fixed_p, return_field_type="displacement")
        crop = tuple(slice(pad[2 * (len(shape) - 1 - i)], pad[2 * (len(shape) - 1 - i)] + s)
                     for i, s in enumerate(shape))
        return disp[(slice(None), slice(None)) + crop]


def voxelmorph_loss(model: VoxelMorph2, moving: torch.Tensor, fixed: torch.Tensor
                    ) -> tuple[torch.Tensor, dict[str, float]]:
    """VoxelMorph's unsupervised loss: ``-NCC(F, M∘φ) + λ · mean ‖∇u‖²``.

    NCC is neurite's windowed squared correlation (the one ``voxelmorph`` uses);
    the smoothness term is the mean squared forward difference of ``u``.
    """
    import neurite as ne

    disp = model(moving, fixed)
    moved = warp(moving, disp)
    ncc = ne.nn.modules.NCC(window_size=model.config.ncc_window)(fixed, moved).mean()
    grads = [torch.diff(disp, dim=d) for d in range(2, disp.dim())]
    smooth = sum(g.pow(2).mean() for g in grads) / len(grads)
    loss = -ncc + model.config.smoothness * smooth
    return loss, {"loss": loss.item(), "ncc": ncc.item(), "smooth": smooth.item()}


def register(model: VoxelMorph2, moving: torch.Tensor, fixed: torch.Tensor) -> RegistrationResult:
    """One forward pass of a trained VoxelMorph-2 network (no inverse, no velocity)."""
    t0 = time.perf_counter()
    with evaluating(model):
        disp = model(moving, fixed)
        result = RegistrationResult(moved=warp(moving, disp), disp=disp, inverse_disp=None,
                                    velocity=None, jacobian_det=jacobian_det(disp))
    result.seconds = time.perf_counter() - t0
    return result


VOXELMORPH_FORMAT = 1


def save_voxelmorph(path, model: VoxelMorph2, step: int, optimizer=None) -> None:
    """Atomically save a VoxelMorph-2 checkpoint (plain tensors and dicts only)."""
    from ..io_utils import atomic_path

    state = {"format_version": VOXELMORPH_FORMAT, "method": "voxelmorph",
             "config": model.config.to_dict(), "state_dict": model.state_dict(), "step": step,
             "optimizer": optimizer.state_dict() if optimizer is not None else {}}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_voxelmorph(run_dir_or_file, device="cpu") -> VoxelMorph2:
    """Load a VoxelMorph-2 run (``voxelmorph.pt`` in a run folder, or the file itself)
    with ``torch.load(weights_only=True)``; anything else raises ``ValueError``."""
    from pathlib import Path

    path = Path(run_dir_or_file)
    if path.is_dir():
        path = path / "voxelmorph.pt"
    if not path.is_file():
        raise FileNotFoundError(f"no VoxelMorph checkpoint at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means "not ours"
        raise ValueError(f"{path}: not a loadable VoxelMorph checkpoint "
                         f"({type(exc).__name__})") from None
    if not isinstance(state, dict) or state.get("method") != "voxelmorph" \
            or state.get("format_version") != VOXELMORPH_FORMAT:
        raise ValueError(f"{path}: not a structreg VoxelMorph checkpoint (format "
                         f"{VOXELMORPH_FORMAT} expected)")
    model = VoxelMorph2(VoxelMorphConfig.from_dict(state["config"]))
    try:
        model.load_state_dict(state["state_dict"])
    except (RuntimeError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: weights do not match the VoxelMorph config "
                         f"({' '.join(str(exc).split())[:200]})") from None
    return model.to(device).eval()


def train_voxelmorph(train_pairs, out_dir, *, config: VoxelMorphConfig | None = None,
                     steps: int = 2000, batch_size: int = 50, lr: float = 1e-4, seed: int = 0,
                     device: str = "cpu", progress: bool = True) -> list[dict[str, float]]:
    """Train VoxelMorph-2 on ``train_pairs`` (list of :class:`~structreg.data.Pair`).

    Adam (lr 1e-4 as VoxelMorph), random batches from a seeded generator; writes
    ``out_dir/voxelmorph.pt`` (atomically, at the end and every 100 steps) and
    ``out_dir/train_log.csv``. Returns the log rows.
    """
    from pathlib import Path

    from tqdm import tqdm

    from ..data import collate_pairs
    from ..io_utils import atomic_write_text

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    data = collate_pairs(train_pairs)
    moving_all, fixed_all = data["moving"], data["fixed"]
    model = VoxelMorph2(config or VoxelMorphConfig(ndim=moving_all.dim() - 2)).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    rows = []
    bar = tqdm(range(1, steps + 1), desc="voxelmorph", disable=not progress)
    n = moving_all.shape[0]
    for step in bar:
        idx = torch.randperm(n, generator=g)[:min(batch_size, n)]
        m, f = moving_all[idx].to(device), fixed_all[idx].to(device)
        opt.zero_grad()
        loss, parts = voxelmorph_loss(model, m, f)
        loss.backward()
        opt.step()
        rows.append({"step": step, **parts})
        bar.set_postfix(loss=f"{parts['loss']:.4f}", ncc=f"{parts['ncc']:.3f}")
        if step % 100 == 0 or step == steps:
            save_voxelmorph(out / "voxelmorph.pt", model, step, opt)
    lines = ["step,loss,ncc,smooth"] + [f"{r['step']},{r['loss']:.6g},{r['ncc']:.6g},{r['smooth']:.6g}"
                                        for r in rows]
    atomic_write_text(out / "train_log.csv", "\n".join(lines) + "\n")
    return rows
