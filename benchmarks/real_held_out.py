"""Registration of real inter-subject brain slices that involve a real subject no
training ever saw: the corpus' held-out T1 (``structreg.data.phantoms.brain_real``
``HELD_OUT_SUBJECT``) against the other corpus T1 subjects, axial slices at MNI z = 8 ...
24 mm on the phantom's grid (100 x 100 at 2 mm), both directions, tissue labels of the
corpus' k-means rule (ventricles counted as CSF). Every volume is brought to MNI by the
same bounding-box normalisation (``brain_real``), the only pre-alignment of every method.

    .venv/bin/python benchmarks/real_held_out.py --out DIR --methods identity \\
        --methods ours:builtin:brain [--methods ...] [--corpus .cache/real/corpus]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))

from real_pairs import report


def held_out_pairs(corpus: Path) -> list:
    """The held-out subject's pairs (:func:`brain_real.real_subject_pairs`)."""
    from structreg.data.phantoms import brain_real as br

    return br.real_subject_pairs(corpus, br.HELD_OUT_SUBJECT, br.TRAINING_SUBJECTS)


def main() -> None:
    import real_corpus

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--corpus", default=str(real_corpus.corpus_dir()), help="corpus folder")
    parser.add_argument(
        "--methods", action="append", required=True, help="method spec (repeatable)"
    )
    args = parser.parse_args()

    import torch

    from structreg.methods import build_methods

    torch.manual_seed(0)
    pairs = held_out_pairs(Path(args.corpus))
    methods = build_methods(args.methods)
    report(pairs, methods, Path(args.out), primary=methods[-1].name)


if __name__ == "__main__":
    main()
