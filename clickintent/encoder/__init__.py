"""The session encoder (issue 4): featurizer, model, self-supervised training and batch embedding.

Import from the submodules: `model` (config + network), `features` (events -> tensors), `objectives`,
`train`, `embed` (`Embedder`, `embed_file`; the Spark job is `clickintent.engines.spark_bundle`), `text`
(MiniLM vectors + disk cache), `io` (bundle read/write), `toy` (tiny sessions for tests and benchmarks).

One process-wide setting happens here, before torch is imported: GNU OpenMP's default wait policy made
torch's two-thread element-wise ops 10-50x slower whenever another process shared the two cores of the
development machine (one training epoch on 14.6k simulated sessions: 87 s with the default, 9.9 s with
OMP_WAIT_POLICY=PASSIVE, 9.7 s with one thread). PASSIVE costs little on an idle machine. It only takes
effect if torch was not imported yet, and an OMP_WAIT_POLICY already set wins.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
