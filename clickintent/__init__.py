"""clickintent: web clickstreams to session embeddings and interpretable intent labels."""

__version__ = "0.1.0"
