"""Built-in phantoms: deterministic synthetic data with known deformations."""
