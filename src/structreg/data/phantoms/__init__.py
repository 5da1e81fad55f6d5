"""Built-in phantoms: deterministic synthetic data with known deformations.

``cardiac``: short-axis ED→ES cine-like slice pairs with ACDC labels, five groups
(``make_cardiac_pair``, ``cardiac_phantom``, ``ejection_fraction``).
"""
