"""`report`: one self-contained HTML page a person can read, from a run's output directory.

The answers come first (does web intent help each task, what visitors came for, how well the labels hold
up), then the figures and tables behind them, then the data. No scripts, no external assets: it opens
offline. Modules: `html` (primitives and number formats), `figures` (inline SVG), `answers`, `results`
(evaluation, distillation, map), `labels` (the taxonomy and example visits), `data` (ingest, sessions,
embeddings, the simulated world), `page` (`write_run_report` on a `clickintent.run.RunLayout`, and
`write_report` on a folder).
"""

from clickintent.report.html import Section, not_available, table
from clickintent.report.page import write_report, write_run_report

__all__ = ["Section", "not_available", "table", "write_report", "write_run_report"]
