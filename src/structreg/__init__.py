"""structreg: learned diffeomorphic registration with a structured, low-dimensional
deformation encoding (conditional VAE + exponentiation layer)."""

__version__ = "0.1.0"
