"""A toy bundle with an encoder and an intent classifier, for the service's tests, benchmarks and a quick look.

`toy_bundle(out)` trains a small encoder on toy sessions (clickintent.encoder.toy: a seeded bank site with
five topics), embeds them, fits the distilled `IntentClassifier` on the topics as labels and writes both into
one bundle, with a five-label taxonomy. The hashing text encoder keeps it fast and offline. What it leaves
out: any meaning beyond the toy topics; real bundles come from `clickintent train` + `clickintent distill`.

    python -m clickintent.serve.toy /tmp/toy-bundle     # then: clickintent serve --bundle /tmp/toy-bundle
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import click

from clickintent.distill.features import Inputs
from clickintent.encoder.model import EncoderConfig

# The encoder's default width (64) with 2 layers: the size the latency goals are stated for.
DEFAULT_CONFIG = EncoderConfig(d_model=64, n_layers=2, n_heads=4, d_ff=128, out_dim=64, dropout=0.0)
TINY_CONFIG = replace(DEFAULT_CONFIG, d_model=32, d_ff=64, out_dim=16)

DESCRIPTIONS = {
    "cards": ("Compare credit cards", "Looks at credit cards and their rewards.", "Products"),
    "savings": ("Open a savings account", "Looks at savings accounts, bonds and ISAs.", "Products"),
    "loans": ("Borrow with a loan", "Looks at personal and car loans.", "Products"),
    "mortgages": ("Find a mortgage", "Looks at mortgages and remortgaging.", "Products"),
    "help": ("Get help", "Looks for support: lost cards, contact details.", "Service"),
}


def toy_taxonomy_json() -> bytes:
    """taxonomy.json for the five toy topics (label ids = the topic names' slugs)."""
    from clickintent.taxonomy.taxonomy import Label, Taxonomy

    labels = [Label(topic, name, desc, cat) for topic, (name, desc, cat) in DESCRIPTIONS.items()]
    tax = Taxonomy.create(labels, mode="manual", generator={"source": "clickintent.serve.toy"})
    return json.dumps(tax.to_dict(), indent=2).encode()


def toy_bundle(
    out: str | Path,
    *,
    sessions: int = 600,
    epochs: int = 2,
    config: EncoderConfig = TINY_CONFIG,
    seed: int = 0,
    text_cache: str | Path | None = None,
    inputs: Inputs = "embedding",
) -> Path:
    """Write a bundle with an encoder and a classifier to `out` (which must not exist or be empty); the
    classifier reads `inputs` (clickintent.distill.features)."""
    import numpy as np

    from clickintent.distill import IntentClassifier
    from clickintent.distill.features import classifier_input, session_text_means, uses_text
    from clickintent.encoder.embed import Embedder
    from clickintent.encoder.text import HashingEncoder, TextVectors
    from clickintent.encoder.toy import TOPICS, toy_sessions
    from clickintent.encoder.train import TrainConfig, train

    table, topic = toy_sessions(sessions, seed=seed, mean_events=8)
    text = TextVectors(HashingEncoder(), text_cache, disk=text_cache is not None)
    cfg = TrainConfig(epochs=epochs, batch_size=64, lr=3e-3, warmup_steps=5, seed=seed, patience=epochs, device="cpu")
    result = train(table, out, config, cfg, text=text, progress=False, resume=False)
    embedder = Embedder.from_bundle(result.bundle, device="cpu", text_cache=text_cache)
    frame = embedder.featurizer.frame(table)
    text_means = session_text_means(frame) if uses_text(inputs) else None
    X = classifier_input(inputs, embedder.embed_frame(frame), text_means)
    y = [TOPICS[i] for i in topic]
    cut = int(len(y) * 0.8)
    clf = IntentClassifier(C=10.0, inputs=inputs).fit(X[:cut], y[:cut], X[cut:], y[cut:])
    clf.save(
        result.bundle,
        toy_taxonomy_json(),
        {"train_rows": cut, "accuracy": float(np.mean(clf.predict(X)[0] == np.array(y)))},
    )
    return Path(result.bundle)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="bundle directory to create")
    parser.add_argument("--sessions", type=int, default=600, help="toy sessions to train on")
    parser.add_argument("--epochs", type=int, default=2, help="training epochs")
    parser.add_argument("--size", choices=["tiny", "default"], default="tiny", help="encoder size")
    args = parser.parse_args()
    config = DEFAULT_CONFIG if args.size == "default" else TINY_CONFIG
    # a command-line entry point: its result, the bundle's path, goes to stdout as the CLI's do
    click.echo(toy_bundle(args.out, sessions=args.sessions, epochs=args.epochs, config=config))


if __name__ == "__main__":
    main()
