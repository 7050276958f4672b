"""`RunLayout`: where every output of a run lies, from one folder.

Two layouts exist. `RunLayout.demo(out)` is what `clickintent demo --out OUT` writes (sim/, data/,
split/, bundle/, the taxonomy, labels, distill.json, evaluation.json, report.html); `RunLayout.flat(dir)` is
one folder holding what the steps wrote there by hand (ingest_report.json, sessions.parquet, embeddings,
taxonomy.json, labels.parquet, distill.json, evaluation.json). `RunLayout.find(dir)` tells them apart. The
demo, the report and `benchmarks/bench_demo.py` read paths from here instead of spelling them. Left out:
creating folders (each step makes its own) and checking that the files exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunLayout:
    root: Path  # the run's folder (the demo's --out)
    sim: Path  # the simulator's output (events.parquet, truth/); absent on real data
    data: Path  # ingest's folder: events.parquet, ingest_report.json, quarantine.parquet
    sessions: Path  # every session (`clickintent sessionize`)
    visits: Path  # the sessions the labels and embeddings describe (the demo's cut visits)
    split: Path  # `clickintent split`: who is learned from, who is scored
    bundle: Path  # encoder (and classifier after distill)
    embeddings: Path
    taxonomy: Path
    llm_labels: Path  # the LLM's labels of the learning sample; its usage file is .with_suffix(".json")
    compare_labels: Path  # the LLM's labels of the evaluation sample, for the comparisons
    distilled: Path  # every visit labelled by the distilled classifier
    distill_report: Path  # distill.json, a `DistillReport`
    evaluation: Path  # evaluation.json
    llm_cache: Path  # the LLM answer cache
    report: Path  # report.html
    summary: Path  # bench_demo.json, the demo's goals as `benchmarks/bench_demo.py` reads them

    @property
    def ingest_report(self) -> Path:
        return self.data / "ingest_report.json"

    @property
    def events(self) -> Path:
        return self.data / "events.parquet"

    @property
    def learn_visits(self) -> Path:
        return self.split / "learn-visits.parquet"

    @property
    def eval_visits(self) -> Path:
        return self.split / "eval-visits.parquet"

    @property
    def llm_usage(self) -> Path:
        return self.llm_labels.with_suffix(".json")

    @classmethod
    def demo(cls, out: Path) -> RunLayout:
        """The layout `clickintent demo --out OUT` writes."""
        data = out / "data"
        return cls(root=out, sim=out / "sim", data=data, sessions=data / "sessions.parquet",
                   visits=data / "visits.parquet", split=out / "split", bundle=out / "bundle",
                   embeddings=data / "embeddings.parquet", taxonomy=out / "taxonomy.json",
                   llm_labels=out / "labels-llm.parquet", compare_labels=out / "labels-llm-compare.parquet",
                   distilled=out / "labels-distilled.parquet", distill_report=out / "distill.json",
                   evaluation=out / "evaluation.json", llm_cache=out / "llm-cache.sqlite",
                   report=out / "report.html", summary=out / "bench_demo.json")  # fmt: skip

    @classmethod
    def flat(cls, run_dir: Path) -> RunLayout:
        """Everything in one folder, under each step's own default name; the labels are labels.parquet
        (whatever made them), and the visits are the sessions."""
        sessions = run_dir / "sessions.parquet"
        return cls(root=run_dir, sim=run_dir / "sim", data=run_dir, sessions=sessions, visits=sessions,
                   split=run_dir / "split", bundle=run_dir / "bundle", embeddings=run_dir / "embeddings.parquet",
                   taxonomy=run_dir / "taxonomy.json", llm_labels=run_dir / "labels.parquet",
                   compare_labels=run_dir / "labels-llm-compare.parquet",
                   distilled=run_dir / "labels-distilled.parquet", distill_report=run_dir / "distill.json",
                   evaluation=run_dir / "evaluation.json", llm_cache=run_dir / "llm-cache.sqlite",
                   report=run_dir / "report.html", summary=run_dir / "bench_demo.json")  # fmt: skip

    @classmethod
    def find(cls, run_dir: Path) -> RunLayout:
        """The demo's layout when `run_dir` has data/ingest_report.json, else the flat one."""
        demo = cls.demo(run_dir)
        return demo if demo.ingest_report.exists() else cls.flat(run_dir)

    def holds_outputs(self) -> bool:
        """Whether any step's output is here (the report needs at least one)."""
        known = (self.ingest_report, self.sessions, self.embeddings, self.taxonomy, self.llm_labels, self.evaluation)
        return any(p.exists() for p in known)

    def truth_dir(self) -> Path | None:
        """The simulator's folder when it holds the truth, else None (real data)."""
        return self.sim if (self.sim / "truth").exists() else None

