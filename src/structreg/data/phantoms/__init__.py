"""Built-in phantoms: deterministic synthetic data with known deformations.

``cardiac``: short-axis ED→ES cine-like slice pairs with ACDC labels, five groups
(``make_cardiac_pair``, ``cardiac_phantom``, ``ejection_fraction``); ``cardiac_volumes``:
the same as short-axis stacks with through-plane motion (``make_cardiac_volume_pair``).
Both are built on ``cardiac_model`` (the continuous heart model, groups, subjects,
slices) and ``cardiac_imaging`` (rasterising, bias, noise, masks).
``brain``: MNI152 axial slices, baseline → follow-up pairs with known atrophy
(``make_brain_pair``, ``brain_phantom``, ``ventricle_volume_change``).
``brain_inter`` (data spec ``phantom:brain-inter``): inter-subject pairs of the same
slices, subject i → subject j with exact ground truth (``make_brain_inter_pair``,
``brain_inter_phantom``; also ``brain_phantom(..., pairing="inter")``);
``brain_volumes``: its whole-brain volume pairs. The brain phantoms share
``brain_template`` (the template on the phantom grid, labels, warping) and
``brain_subjects`` (groups, cohorts, random subjects, atrophy, scanner).

Imports run one way: ``cardiac`` -> ``cardiac_volumes`` -> ``cardiac_imaging`` ->
``cardiac_model``; ``brain`` -> ``brain_inter`` -> ``brain_volumes`` ->
``brain_subjects`` / ``brain_template``.
"""
