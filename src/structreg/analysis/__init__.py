"""Analysis of the structured deformation encoding (Krebs et al. 2018, Fig. 3-4).

- :mod:`.latent`: encode pairs into codes, codes CSV files, CCA projection and
  cross-validated SVM classification of groups, the 3-D CCA scatter figure.
- :mod:`.transport`: apply one pair's code to another image (deformation transport).
- :mod:`.sampling`: deformations sampled from the prior, posterior spread
  (uncertainty map), interpolation between codes.

Submodules are imported on use (scikit-learn, matplotlib are heavy).
"""

__all__ = ["latent", "transport", "sampling"]
