"""Intent taxonomy from sessions: render as text, summarise, generate a taxonomy, LLM-label a sample.

`build_taxonomy` (modes `cluster` and `llm`) writes the `Taxonomy` saved as taxonomy.json;
`label_sessions` writes labels.parquet rows. See each module's docstring for what it leaves out.
"""

from __future__ import annotations

from clickintent.taxonomy.generate import Generated, build_taxonomy, generate_cluster, generate_llm
from clickintent.taxonomy.label import label_sessions, nearest_description_labels
from clickintent.taxonomy.render import render_session, render_table
from clickintent.taxonomy.summarize import summarize
from clickintent.taxonomy.taxonomy import Label, Taxonomy

__all__ = [
    "Generated",
    "Label",
    "Taxonomy",
    "build_taxonomy",
    "generate_cluster",
    "generate_llm",
    "label_sessions",
    "nearest_description_labels",
    "render_session",
    "render_table",
    "summarize",
]
