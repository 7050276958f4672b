"""The session encoder (issue 4): featurizer, model, self-supervised training and batch embedding.

Import from the submodules; this package keeps its import light (no torch work at import time beyond
what the submodules need).
"""
