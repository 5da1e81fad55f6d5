"""Files and cohorts through a registration method: one pair of image files to an
output folder (``files``), a cohort with a summary and resume (``batch``), and the
2-D and 3-D demonstrations (``demo``)."""
