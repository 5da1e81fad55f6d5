"""The stateless core: tensor ops (``ops``), thin ``nn.Module`` wrappers (``layers``),
the training losses (``losses``) and the evaluation metrics (``metrics``).

Everything above (models, methods, training, evaluation) builds on these; nothing
here imports from another part of structreg except :mod:`structreg.errors`.
"""
