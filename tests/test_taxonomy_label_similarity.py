"""The similarity weight of LLM labels (issue 19): a shortlisted label's score is the model's calibrated
log-likelihood plus `similarity_weight` x the session's mean cosine to the label's 3 example visits most
like it. It decides where the model is near-indifferent, leaves a confident model alone at a small weight,
is the model alone at 0, and the CLI's `--similarity-weight` reaches `label_sessions`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from test_taxonomy import make_sessions, small_taxonomy

from clickintent.encoder.text import HashingEncoder
from clickintent.llm import Cache, Completion, Request
from clickintent.llm.fake import FakeBackend
from clickintent.taxonomy import label as label_mod
from clickintent.taxonomy.label import (
    AllLabels,
    Candidates,
    NearestLabels,
    NoDemonstrations,
    Shortlist,
    decide,
    label_sessions,
)
from clickintent.taxonomy.taxonomy import Label, Taxonomy


@pytest.fixture(scope="module")
def sessions() -> pa.Table:
    return make_sessions()


def three_label_taxonomy() -> Taxonomy:
    """Three labels with two example sessions each in `make_sessions`."""
    return Taxonomy.create(
        [
            Label("", "Cashback card application", "Applying for a card.", "Cards", ["cards-0", "cards-1"], 0.4),
            Label("", "Remortgage", "Switching a mortgage.", "Borrowing", ["mortgage-0", "mortgage-1"], 0.3),
            Label("", "Savings rates", "Comparing rates.", "Saving", ["savings-0", "savings-1"], 0.3),
        ],
        mode="manual",
    )


def lean(margin: float) -> Any:
    """A model that, whatever the visit, prefers the first choice it is offered by `margin` nats over the
    next, and so on down the list: near-indifferent for a small margin, sure of itself for a large one."""

    def answer(request: Request) -> Completion:
        assert request.choices
        return Completion(
            text=request.choices[0], choice_logprobs={c: -margin * i for i, c in enumerate(request.choices)}
        )

    return answer


def leaning(margin: float) -> FakeBackend:
    return FakeBackend(lean(margin))


def labelled(table: pa.Table, llm: FakeBackend, candidates: Candidates, weight: float) -> dict[str, str]:
    out = label_sessions(table, three_label_taxonomy(), llm, sample=None, demonstrations=NoDemonstrations(),
                         candidates=candidates, calibrate=False, similarity_weight=weight)  # fmt: skip
    return dict(zip(out.column("session_id").to_pylist(), out.column("intent").to_pylist(), strict=True))


def test_bonus_fills_names_without_examples_with_the_mean() -> None:
    sl = Shortlist(("A", "B", "Other"), {"A": 0.5, "B": 0.1})
    assert sl.bonus(10.0) == pytest.approx({"A": 5.0, "B": 1.0, "Other": 3.0})
    assert sl.bonus(0.0) == {}
    assert Shortlist(("A", "Other")).bonus(10.0) == {}  # nothing measured: no bonus at all
    c = Completion(text="A", choice_logprobs={"A": -1.0, "B": -1.2})
    assert decide(c, None)[0] == "A"
    assert decide(c, None, {"A": 0.0, "B": 0.5})[0] == "B"


def test_weight_decides_where_the_model_is_near_indifferent(sessions: pa.Table) -> None:
    tax = three_label_taxonomy()
    near = NearestLabels(sessions, 2, HashingEncoder())
    nearest = {sid: tax.by_name(names[0]).id for sid, names in NearestLabels(sessions, 1, HashingEncoder())
               .choices(sessions, tax).items()}  # fmt: skip
    web = sessions.filter(pa.compute.not_equal(sessions.column("platform"), "app"))  # the labels' own journeys
    first = {sid: tax.by_name(names[0]).id for sid, names in near.choices(web, tax).items()}
    alone = labelled(web, leaning(0.01), near, 0.0)
    assert alone == first  # weight 0: the model's lean to the first name decides
    weighted = labelled(web, leaning(0.01), near, 10.0)
    assert weighted == {sid: nearest[sid] for sid in weighted}  # the nearest label wins every session
    assert weighted != alone  # the case has teeth: the lean and the similarity disagree somewhere
    # a model sure of itself (50 nats) is not overruled by a weight whose bonus spans at most 2 x 10
    assert labelled(web, leaning(50.0), near, 10.0) == alone


def test_weight_zero_and_candidates_without_similarities_are_the_model_alone(sessions: pa.Table) -> None:
    near = NearestLabels(sessions, 2, HashingEncoder())

    class NamesOnly(Candidates):
        """The same shortlists with their similarities dropped: how labels were chosen before the weight."""

        def shortlists(self, table: pa.Table, taxonomy: Taxonomy) -> dict[str, Shortlist]:
            return {sid: Shortlist(sl.names) for sid, sl in near.shortlists(table, taxonomy).items()}

    assert labelled(sessions, leaning(0.01), near, 0.0) == labelled(sessions, leaning(0.01), NamesOnly(), 100.0)
    assert labelled(sessions, leaning(0.01), AllLabels(), 100.0) == labelled(sessions, leaning(0.01), AllLabels(), 0)
    with pytest.raises(ValueError, match="similarity_weight"):
        labelled(sessions, leaning(0.01), near, -1.0)


def test_cli_similarity_weight_reaches_label_sessions(
    tmp_path: Path, sessions: pa.Table, monkeypatch: pytest.MonkeyPatch
) -> None:
    from clickintent.cli import main
    from clickintent.cli import taxonomy as cli_tax

    assert cli_tax.SIMILARITY_WEIGHT == label_mod.SIMILARITY_WEIGHT  # the CLI's copy of the default
    monkeypatch.setattr(cli_tax, "make_backend", lambda kind, **kw: FakeBackend(lean(0.01), cache=Cache(kw["cache"])))
    monkeypatch.setattr(label_mod, "MiniLMEncoder", HashingEncoder)
    real, seen = label_mod.label_sessions, []

    def spy(*args: Any, **kw: Any) -> pa.Table:
        seen.append(kw)
        return real(*args, **kw)

    monkeypatch.setattr(label_mod, "label_sessions", spy)
    pq.write_table(sessions, tmp_path / "sessions.parquet")
    small_taxonomy().save(tmp_path / "taxonomy.json")
    runner = CliRunner()

    def run(*flags: str) -> Any:
        return runner.invoke(main, ["taxonomy", "label", str(tmp_path / "sessions.parquet"), "-t",
                                    str(tmp_path / "taxonomy.json"), "-o", str(tmp_path / "l.parquet"),
                                    "--llm-cache", str(tmp_path / "c.sqlite"), *flags])  # fmt: skip

    assert run().exit_code == 0 and seen[-1]["similarity_weight"] == label_mod.SIMILARITY_WEIGHT
    res = run("--similarity-weight", "7.5")
    assert res.exit_code == 0, res.output
    assert seen[-1]["similarity_weight"] == 7.5 and isinstance(seen[-1]["candidates"], NearestLabels)
    bad = run("--similarity-weight", "-1")
    assert bad.exit_code == 2 and "similarity-weight" in bad.output


class KeywordEncoder(label_mod.TextEncoder):
    """Vectors by the word a session's text holds: 'alpha' e1, 'gamma' e3, 'beta' 0.6 e1 + 0.8 e2."""

    dim = 3

    def encode(self, texts: Any) -> Any:
        import numpy as np

        table = {"alpha": [1.0, 0.0, 0.0], "gamma": [0.0, 0.0, 1.0], "beta": [0.6, 0.8, 0.0]}
        return np.array([next(v for k, v in table.items() if k in t.lower()) for t in texts], np.float32)


def test_a_label_is_as_near_as_its_nearest_example_visits() -> None:
    # Label A: 3 example visits just like the visit, 17 unlike it (a spread-out cluster); label B: 20 visits
    # all somewhat like it. By the mean of all examples B is nearer (0.6 vs 0.15); by the 3 nearest, A (1.0).
    def visit(sid: str, word: str) -> dict[str, Any]:
        ev = {"ts": None, "url": f"https://b.example/{word}", "page": f"/{word}", "page_title": word.title(),
              "event_type": "page_view", "device": None, "referrer": None, "search_query": None, "dwell_ms": None}
        return {"session_id": sid, "visitor_id": sid, "customer_id": None, "platform": "web", "start": 0,
                "end": 0, "n_events": 1, "events": [ev]}  # fmt: skip

    rows = [visit(f"a{i}", "alpha" if i < 3 else "gamma") for i in range(20)]
    rows += [visit(f"b{i}", "beta") for i in range(20)] + [visit("q", "alpha")]
    pool = pa.Table.from_pylist(rows, schema=make_sessions().schema)
    labels = [Label("", "Alpha things", "A.", "X", [f"a{i}" for i in range(20)], 0.5),
              Label("", "Beta things", "B.", "X", [f"b{i}" for i in range(20)], 0.5)]  # fmt: skip
    tax = Taxonomy.create(labels, mode="manual")
    query = pool.slice(pool.num_rows - 1)
    assert label_mod.NEAREST_EXAMPLES == 3
    assert NearestLabels(pool, 1, KeywordEncoder()).choices(query, tax)["q"][0] == "Alpha things"
    assert NearestLabels(pool, 1, KeywordEncoder(), nearest=20).choices(query, tax)["q"][0] == "Beta things"
    near = NearestLabels(pool, 2, KeywordEncoder()).shortlists(query, tax)["q"]
    assert near.similarity == pytest.approx({"Alpha things": 1.0, "Beta things": 0.6})
    with pytest.raises(ValueError, match="at least 1"):
        NearestLabels(pool, 1, KeywordEncoder(), nearest=0)
