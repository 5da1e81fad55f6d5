"""Baselines of the paper's comparison; each exposes ``register(moving, fixed, ...)``
returning a :class:`structreg.registration.RegistrationResult`."""
