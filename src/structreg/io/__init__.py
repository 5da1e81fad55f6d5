"""Image files and world space: reading and writing NIfTI images (``nifti``), grids and
world mappings between images (``grids``), displacement fields in the ITK/ANTs
convention (``fields``) and atomic, confined file writing (``files``)."""
