"""Built-in phantoms: deterministic synthetic data with known deformations.

``cardiac``: short-axis ED→ES cine-like slice pairs with ACDC labels, five groups
(``make_cardiac_pair``, ``cardiac_phantom``, ``ejection_fraction``).
``brain``: MNI152 axial slices, baseline → follow-up pairs with known atrophy
(``make_brain_pair``, ``brain_phantom``, ``ventricle_volume_change``).
``brain_inter`` (data spec ``phantom:brain-inter``): inter-subject pairs of the same
slices, subject i → subject j with exact ground truth (``make_brain_inter_pair``,
``brain_inter_phantom``; also ``brain_phantom(..., pairing="inter")``).
"""
