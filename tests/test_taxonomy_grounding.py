"""Issue 19's grounding rules for categories and descriptions: the home page is its own section, a flat
site's pages are its sections, a label's category is the section most over its base share (not the one
every visit passes), descriptions are a grounded template unless asked for from the LLM, and the GA4
sample export (ingested and sessionized as a team would) gets several categories that name its sections."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_taxonomy import make_sessions, pipeline_answer

from clickintent import schema
from clickintent.encoder.text import HashingEncoder, TextEncoder
from clickintent.ingest import IngestOptions, ingest
from clickintent.ingest.presets import samples
from clickintent.llm.fake import FakeBackend
from clickintent.sessionize import sessionize
from clickintent.taxonomy.cluster import KMeansClusterer
from clickintent.taxonomy.generate import DistinctEncoder, generate_cluster, top_section
from clickintent.taxonomy.naming import Group, described
from clickintent.taxonomy.phrases import SiteMap


def ev(page: str, title: str | None = None) -> dict[str, Any]:
    return {"page": page, "page_title": title, "search_query": None}


def build(table: pa.Table, **kw: Any) -> Any:
    kw.setdefault("clusterer", KMeansClusterer(k=range(2, 7)))
    return generate_cluster(table, FakeBackend(pipeline_answer), text_encoder=HashingEncoder(), **kw)


# -- sections ---------------------------------------------------------------------------------------


def test_the_home_page_is_the_home_section_and_opaque_ids_have_none() -> None:
    visits = [[ev("b.com/", "Home | Bank"), ev("b.com/cards/cashback"), ev("b.com/cards/travel")],
              [ev("https://b.com", None), ev("1005115")]]  # fmt: skip
    site = SiteMap.learn(visits, suffix="Bank")
    assert site.sections(visits[0]) == {"Home", "Cards"}
    assert site.sections(visits[1]) == {"Home"}  # an empty path is the home page too; a product id is nothing
    assert site.section("1005115", None) is None and site.section("electronics.smartphone", None) == "Electronics"


def test_a_home_only_label_is_in_the_home_category_not_site() -> None:
    table = make_sessions()
    rows = table.to_pylist()
    for row in rows[:6]:  # the cards journeys become visits of the home page alone
        row["events"] = [{**e, "page": "/", "url": "https://bank.example/", "page_title": "Welcome",
                          "search_query": None, "event_type": "page_view"} for e in row["events"][:2]]  # fmt: skip
        row["n_events"] = 2
    result = build(pa.Table.from_pylist(rows, schema=schema.SESSIONS))
    home = {result.assignments[r["session_id"]] for r in rows[:6]}
    assert len(home) == 1
    assert result.taxonomy.by_id(home.pop()).category == "Home"
    assert "Site" not in {lb.category for lb in result.taxonomy.labels}


def test_a_flat_sites_pages_are_its_sections() -> None:
    flat = [[ev("b.com/credit-cards", "Credit cards | Bank"), ev("b.com/mortgages")], [ev("b.com/savings-accounts")]]
    site = SiteMap.learn(flat, suffix="Bank")
    assert site.flat
    assert site.sections(flat[0]) == {"Credit cards", "Mortgages"} and site.sections(flat[1]) == {"Savings accounts"}
    # one small directory beside many pages under the root (the GA4 sample's /cards) is still a flat site
    mostly = [*flat, [ev("b.com/cards"), ev("b.com/cards/cashback"), ev("b.com/help/contact"), ev("b.com/loans")]]
    assert SiteMap.learn(mostly, suffix="Bank").sections(mostly[2]) == {"Cards", "Help", "Loans"}
    # a site built of directories keeps a lone page (`/privacy`) out of its sections
    deep = [[ev(f"b.com/{d}/{p}") for p in ("a", "b", "c")] for d in ("cards", "loans")] + [[ev("b.com/privacy")]]
    site = SiteMap.learn(deep)
    assert not site.flat and site.sections(deep[2]) == set() and site.sections(deep[0]) == {"Cards"}


# -- categories -------------------------------------------------------------------------------------


def test_the_category_is_the_section_most_over_its_base_share() -> None:
    base = {"Home": 0.9, "Cards": 0.2, "Careers": 0.01, "Loans": 0.05}
    assert top_section({"Home": 0.95, "Cards": 0.6}, base) == "Cards"  # not the page every visit passes
    assert top_section({"Home": 1.0, "Careers": 0.2}, base) == "Home"  # 20% of the label is not its section
    assert top_section({"Cards": 0.8, "Loans": 0.3}, base) == "Cards"  # under half the plurality's share
    assert top_section({"Loans": 0.1}, base) == "Loans" and top_section({}, base) is None


def test_a_section_every_visit_passes_does_not_win_every_label() -> None:
    table = make_sessions()
    rows = table.to_pylist()
    for row in rows:  # every visit also passes two pages of an Accounts directory, which sorts first
        extra = [{**row["events"][0], "page": f"/accounts/{p}", "page_title": None, "search_query": None}
                 for p in ("overview", "settings")]  # fmt: skip
        row["events"] = extra + row["events"]
        row["n_events"] += 2
    result = build(pa.Table.from_pylist(rows, schema=schema.SESSIONS))
    cats = {lb.category for lb in result.taxonomy.labels[:-1]}
    assert "Accounts" not in cats and {"Cards", "Mortgages", "Savings"} <= cats


# -- descriptions -----------------------------------------------------------------------------------


def test_the_template_description_reads_well_and_is_grounded() -> None:
    group = Group("Cards", [("Cashback card", 0.8), ("Cashback", 0.7), ("Credit cards", 0.6), ("ISA rates", 0.3)],
                  ["cashback card", "call 555-123-4567", "annual fee"])  # fmt: skip
    desc = group.template_description("Cashback card")
    assert desc == 'Visitors reading about cashback card, credit cards and ISA rates in the Cards section, ' \
        'searching for "annual fee".'  # fmt: skip
    assert described(desc, group.block(), "Cashback card")
    assert "555" not in desc and "PHONE" not in desc
    assert Group("Careers", [], []).template_description("Careers visits") == "Visitors to the Careers section."
    login = Group("Login", [("Sign in", 0.9)], []).template_description("Sign in")
    assert login == "Visitors reading about sign in, in the Login section."
    assert Group(None, [], []).template_description("Visit group 1").startswith("Visits whose pages")


def test_descriptions_flag_on_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from clickintent.cli import main
    from clickintent.cli import taxonomy as cli_tax
    from clickintent.taxonomy import generate as generate_mod
    from clickintent.taxonomy.taxonomy import Taxonomy

    monkeypatch.setattr(cli_tax, "make_backend", lambda kind, **kw: FakeBackend(pipeline_answer))
    monkeypatch.setattr(generate_mod, "MiniLMEncoder", HashingEncoder)
    pq.write_table(make_sessions(), tmp_path / "s.parquet")
    args = ["taxonomy", "build", str(tmp_path / "s.parquet"), "--clusterer", "kmeans", "--max-labels", "5"]
    for flag, step, kind in [(None, False, "template"), ("--llm-descriptions", True, "llm"),
                             ("--template-descriptions", False, "template")]:  # fmt: skip
        out = tmp_path / f"{kind}{flag}.json"
        res = CliRunner().invoke(main, [*args, "-o", str(out), *([flag] if flag else [])])
        assert res.exit_code == 0, res.output
        assert ("label descriptions" in res.output) == step
        assert Taxonomy.load(out).generator["descriptions"] == kind


# -- speed ------------------------------------------------------------------------------------------


class Counting(TextEncoder):
    name, dim = "counting", HashingEncoder.dim

    def __init__(self) -> None:
        self.texts: list[str] = []

    def encode(self, texts: Any) -> Any:
        self.texts += list(texts)
        return HashingEncoder().encode(texts)


def test_a_build_encodes_each_distinct_text_once() -> None:
    inner = Counting()
    enc = DistinctEncoder(inner)
    assert enc.encode(["a b", "a b", "c"]).shape == (3, enc.dim) and enc.encode([]).shape == (0, enc.dim)
    assert (enc.encode(["c", "a b"]) == HashingEncoder().encode(["c", "a b"])).all()
    assert inner.texts == ["a b", "c"]
    inner = Counting()
    generate_cluster(make_sessions(), FakeBackend(pipeline_answer), clusterer=KMeansClusterer(k=4), text_encoder=inner)
    repeated = [t for t, n in Counter(inner.texts).items() if n > 1]
    assert not repeated and len(inner.texts) > 0


# -- the GA4 sample export --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ga4_sessions(tmp_path_factory: pytest.TempPathFactory) -> pa.Table:
    root = tmp_path_factory.mktemp("ga4")
    src = samples.write_ga4(samples.journeys(), root / "events_20240301.json")
    ingest(src, root / "out", IngestOptions(preset="ga4"))
    sessionize(root / "out" / "events.parquet", root / "out" / "sessions.parquet")
    return pq.read_table(root / "out" / "sessions.parquet")


def _first_segment(page: str) -> str:
    path = urlsplit("//" + page if "//" not in page else page).path.strip("/")
    return path.split("/", 1)[0]


def test_the_ga4_sample_gets_several_categories_naming_its_sections(ga4_sessions: pa.Table) -> None:
    """Before issue 19's rules this sample got one category (every label under `Cards`, the only
    directory, or `Site`)."""
    result = generate_cluster(ga4_sessions, FakeBackend(pipeline_answer), text_encoder=HashingEncoder())
    labels = result.taxonomy.labels[:-1]
    segments = {_first_segment(e["page"]) for evs in ga4_sessions.column("events").to_pylist() for e in evs}
    real = {s.replace("-", " ").capitalize() if s else "Home" for s in segments}
    cats = {lb.category for lb in labels}
    assert len(cats) >= 3 and cats <= real, (cats, real)
    events = dict(zip(ga4_sessions.column("session_id").to_pylist(), ga4_sessions.column("events").to_pylist(),
                      strict=True))  # fmt: skip
    for lb in labels:  # each category is where a good part of its label's visits are
        members = [s for s, lid in result.assignments.items() if lid == lb.id]
        inside = [any((_first_segment(e["page"]) or "home") == lb.category.lower() for e in events[s]) for s in members]
        assert sum(inside) >= 0.25 * len(members), lb
        assert lb.description.startswith("Visitors") and f"the {lb.category} section" in lb.description


def test_the_coverage_weight_prefers_the_phrase_most_visits_have() -> None:
    """A model that prefers one page's name ("Set a travel notice") is overruled by the coverage weight
    when another candidate ("Card help") is in far more of the group's visits; weight 0 keeps its pick."""
    from clickintent.llm.base import Completion, Request
    from clickintent.taxonomy.naming import name_groups

    def answer(request: Request) -> Completion:
        scores = {c: (-1.0 if c == "Set a travel notice" else -2.0) for c in request.choices or ()}
        return Completion(text=max(scores, key=lambda c: scores[c]), choice_logprobs=scores)

    group = Group("Help Center", [("Set a travel notice", 0.2), ("Card help", 0.9)], [])
    llm = FakeBackend(answer)

    def named(weight: float) -> list[str]:
        return name_groups(llm, [group], prior_weight=0.0, coverage_weight=weight)

    assert named(0.0) == ["Set a travel notice"]
    # log(0.9) - log(0.2) = 1.5 > the model's margin of 1 at weight 1; not at weight 0.5 (0.75 < 1)
    assert named(1.0) == ["Card help"]
    assert named(0.5) == ["Set a travel notice"]
    with pytest.raises(ValueError, match="coverage_weight"):
        name_groups(llm, [group], coverage_weight=-1.0)


# -- term vectors -----------------------------------------------------------------------------------


def test_term_vectors_split_visits_on_the_phrase_a_shared_section_hides() -> None:
    """Refinance and purchase visits share the section and its calculator; their TF-IDF term vectors keep
    the refinance visits together; a build can cluster them, and says so in its generator block."""
    from clickintent.taxonomy.phrases import session_terms, term_vectors

    calc = ev("b.com/home-loans/mortgage-calculator", "Mortgage calculator | Home Loans | Bank")
    refi = [ev("b.com/home-loans/refinance", "Refinance your mortgage | Home Loans | Bank"), calc]
    buy = [ev("b.com/home-loans/fixed-30", "30-year fixed mortgage | Home Loans | Bank"), calc]
    x = term_vectors([session_terms(v, "Bank") for v in [refi, refi, buy, buy]])
    assert x.shape[0] == 4 and np.allclose(np.linalg.norm(x, axis=1), 1, atol=1e-5)
    assert x[0] @ x[1] > 0.99 and x[0] @ x[2] < 0.5  # the shared calculator weighs less than the product page
    assert term_vectors([{}, {}]).shape == (2, 1) and not term_vectors([{}, {}]).any()  # no terms: zero rows

    table = make_sessions()
    result = build(table, vectors="terms")
    assert result.taxonomy.generator["vectors"] == "terms" and len(result.taxonomy.labels) >= 3
    with pytest.raises(ValueError, match="embeddings=None"):
        build(table, vectors="terms", embeddings=pa.table({"session_id": ["x"], "embedding": [[1.0]]}))
