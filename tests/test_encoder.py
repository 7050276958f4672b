"""Session encoder: featurizer, model invariants, objectives' sampling, training, batch and single embedding.

Everything here uses the hashing text encoder (a fast deterministic stand-in for MiniLM, which has its
own test in test_encoder_text.py) and tiny models, so the file runs in well under a minute.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from clickintent.encoder.embed import Embedder, embed_file
from clickintent.encoder.features import (
    FIRST,
    REFERRER_CLASSES,
    Featurizer,
    Vocab,
    collate,
    referrer_kind,
    search_terms,
    time_bucket,
    url_tokens,
)
from clickintent.encoder.fields import COLUMNS, EVENT_FIELDS
from clickintent.encoder.io import load_encoder, save_encoder
from clickintent.encoder.model import EncoderConfig, SessionEncoder
from clickintent.encoder.objectives import contrastive_loss, drop_pages, mask_events, sample_subsequences
from clickintent.encoder.text import HashingEncoder, TextVectors
from clickintent.encoder.toy import toy_sessions
from clickintent.encoder.train import TrainConfig, train
from clickintent.schema import EMBEDDINGS, SESSIONS

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
TINY = EncoderConfig(d_model=32, n_layers=2, n_heads=4, d_ff=64, out_dim=16, dropout=0.0)


def event(page: str, *, sec: float = 0, title: str | None = None, **kw: Any) -> dict[str, Any]:
    return {
        "ts": T0 + timedelta(seconds=sec),
        "url": kw.pop("url", "https://www." + page),
        "page": page,
        "page_title": title,
        "event_type": kw.pop("event_type", "page_view"),
        "device": kw.pop("device", "desktop"),
        "referrer": kw.pop("referrer", None),
        "search_query": kw.pop("search_query", None),
        "dwell_ms": kw.pop("dwell_ms", 5000),
    }


def sessions_table(sessions: list[list[dict[str, Any]]]) -> pa.Table:
    """A SESSIONS table built directly with pyarrow."""
    rows = [
        {
            "session_id": f"s{i}", "visitor_id": f"v{i}", "customer_id": None, "platform": "web",
            "start": evs[0]["ts"] if evs else T0, "end": evs[-1]["ts"] if evs else T0, "n_events": len(evs),
            "events": evs,
        }
        for i, evs in enumerate(sessions)
    ]  # fmt: skip
    return pa.Table.from_pylist(rows, schema=SESSIONS)


@pytest.fixture(scope="module")
def text(tmp_path_factory: pytest.TempPathFactory) -> TextVectors:
    return TextVectors(HashingEncoder(), tmp_path_factory.mktemp("textcache"))


@pytest.fixture(scope="module")
def small() -> pa.Table:
    """Three hand-written sessions covering referrers, search, missing values and an unseen page."""
    return sessions_table(
        [
            [
                event("bank.example/cards", title="Credit cards", referrer="https://www.google.com/search?q=x"),
                event(
                    "bank.example/cards/cashback", sec=30, title="Cashback card", referrer="https://bank.example/cards"
                ),
                event("bank.example/search?q={text}", sec=45, event_type="search", search_query="balance transfer"),
            ],
            [
                event("bank.example/savings", title="Savings", referrer="https://mail.example.com/", dwell_ms=None),
                event("bank.example/savings/isa", sec=3600, title="Cash ISA", device=None, referrer="facebook"),
            ],
            [event("bank.example/loans/brand-new-loan", title="Brand new loan", event_type="weird_type")],
        ]
    )


@pytest.fixture(scope="module")
def vocab(small: pa.Table) -> Vocab:
    return Vocab.build(small.slice(0, 2), min_page_count=1, n_page_buckets=64, text_model="hashing-384", max_events=8)


@pytest.fixture(scope="module")
def toy() -> tuple[pa.Table, np.ndarray]:
    return toy_sessions(400, seed=3, mean_events=7)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, toy: tuple[pa.Table, np.ndarray], text: TextVectors) -> Any:
    out = tmp_path_factory.mktemp("run") / "bundle"
    cfg = TrainConfig(epochs=6, batch_size=32, lr=3e-3, warmup_steps=5, seed=7, patience=6)
    return train(toy[0], out, TINY, cfg, text=text, progress=False, resume=False)


# --- featurizer --------------------------------------------------------------------------------------


def test_featurizer_ids(small: pa.Table, vocab: Vocab, text: TextVectors) -> None:
    f = Featurizer(vocab, text).frame(small)
    c = f.columns
    assert list(f.lengths) == [3, 2, 1]
    known = set(range(1, 1 + len(vocab.pages)))
    assert c["page"][0] in known and c["page"][3] in known
    assert c["page"][5] == c["page_bucket"][5] > len(vocab.pages)  # unseen page -> an OOV bucket
    assert len(vocab.pages) < c["page"][5] < vocab.n_page_ids
    assert c["event_type"][5] == 1  # unknown event type
    assert c["device"][4] == 1  # missing device
    ref = [REFERRER_CLASSES[i - 1] for i in c["referrer"]]
    assert ref == ["search", "internal", "direct", "email", "social", "direct"]
    assert c["gap"][0] == FIRST and c["gap"][3] == FIRST and c["gap"][1] > FIRST
    assert c["gap"][4] > c["gap"][1]  # an hour later beats 30 s later
    assert c["dwell"][3] == 1  # missing dwell
    assert c["title"][2] == 0 and c["query"][2] > 0  # the search event has a query, no title
    assert c["query"][0] > 0 and c["query"][1] == 0  # google's ?q=x stands in for the missing query
    assert np.allclose(np.linalg.norm(f.text[1:], axis=1), 1.0) and not f.text[0].any()


def test_referrers_and_url_tokens() -> None:
    assert referrer_kind(None) == referrer_kind("") == "direct"
    assert referrer_kind("https://www.bing.com/") == "search"
    assert referrer_kind("https://l.facebook.com/x") == "social"
    assert referrer_kind("https://partner.example/offers?utm_medium=email") == "email"
    assert referrer_kind("https://some-blog.example/") == "other"
    assert search_terms("https://www.google.com/search?q=best+cd+rate&hl=en") == "best cd rate"
    assert search_terms("https://www.bing.com/") == ""
    toks = url_tokens("www.bank.example/cards/cashback-credit-card?appId={num}", 16)
    assert "host:bank.example" in toks and "seg:cards" in toks and "w:cashback" in toks and "q:appid" in toks
    assert url_tokens("214536502", 16) == ["key:214536502"]  # opaque item id


def test_time_buckets_are_monotone() -> None:
    b = time_bucket(np.array([0, 50, 100, 1_000, 10_000, 100_000, 10**9]), 16)
    assert (np.diff(b) >= 0).all() and b[-1] == 2 + 15
    assert time_bucket(np.array([-1]), 16)[0] == 1


def test_long_sessions_keep_their_last_events(vocab: Vocab, text: TextVectors) -> None:
    evs = [event(f"bank.example/p{i}", sec=i, title=f"page {i}") for i in range(12)]
    f = Featurizer(vocab, text).frame(sessions_table([evs]))
    assert f.lengths[0] == vocab.max_events == 8
    assert f.columns["gap"][0] == FIRST  # the first kept event starts the session
    assert f.columns["page_bucket"][0] == Featurizer(vocab, text)._page("bank.example/p4")[1]


def test_row_path_equals_arrow_path(small: pa.Table, vocab: Vocab, text: TextVectors) -> None:
    feat = Featurizer(vocab, text)
    long = sessions_table([[event(f"bank.example/p{i}", sec=i, title=f"page {i}") for i in range(12)]])
    for table in (small, long, toy_sessions(30, seed=4)[0]):
        a = feat.frame(table)
        b = feat.frame_rows([row["events"] for row in table.to_pylist()])
        assert np.array_equal(a.offsets, b.offsets)
        for name in ("page", "page_bucket", "event_type", "device", "dwell", "gap", "referrer"):
            assert np.array_equal(a.columns[name], b.columns[name]), name
        assert np.array_equal(a.url_tokens[a.columns["url"]], b.url_tokens[b.columns["url"]])
        for name in ("title", "query"):
            assert np.array_equal(a.text[a.columns[name]], b.text[b.columns[name]])


def test_each_event_field_reaches_every_part(small: pa.Table, vocab: Vocab, text: TextVectors) -> None:
    """The declared field table drives the frame, the batch, the model's embedding and the bundle's JSON."""
    frame = Featurizer(vocab, text).frame(small)
    batch = collate(frame, np.arange(len(frame)))
    model = make_model(vocab)
    cfg = model.config.to_json()
    assert set(COLUMNS) == set(frame.columns) == set(batch.ids)
    for f in EVENT_FIELDS:
        assert batch.ids[f.name].shape == (len(frame), int(batch.lengths.max()))
        if f.kind != "text":
            assert isinstance(model.embed_events.get_submodule(f.name), torch.nn.Embedding), f.name
        if f.kind == "category":  # stored flat, under the keys bundles always had
            assert f.vocab_key in vocab.to_json() and f"n_{f.vocab_key}" in cfg
    assert Vocab.from_json(vocab.to_json()) == vocab
    assert EncoderConfig.from_json(cfg) == model.config
    old = {k: v for k, v in vocab.to_json().items() if k != "devices"}  # a vocab without a declared field
    with pytest.raises(ValueError, match="no devices"):
        Vocab.from_json(old)


def test_collate_pads_to_longest(small: pa.Table, vocab: Vocab, text: TextVectors) -> None:
    f = Featurizer(vocab, text).frame(small)
    b = collate(f, np.array([1, 2]))
    assert b.page.shape == (2, 2)  # the longest of the two sessions, not max_events
    assert b.page[1, 1] == 0 and b.padding.tolist() == [[False, False], [False, True]]
    sub = collate(f, np.array([0]), starts=np.array([1]), lengths=np.array([2]))
    assert sub.page[0].tolist() == f.columns["page"][1:3].tolist()
    assert sub.gap[0, 0] == FIRST  # a slice starts afresh
    # per-batch tables hold only the rows used; indices stay consistent
    assert torch.equal(sub.text[sub.title[0, 0]], torch.from_numpy(f.text[f.columns["title"][1]]))


# --- model -------------------------------------------------------------------------------------------


def make_model(vocab: Vocab, seed: int = 0, **kw: Any) -> SessionEncoder:
    torch.manual_seed(seed)
    cfg = replace(TINY, **kw).for_vocab(vocab)
    return SessionEncoder(cfg).eval()


def test_shapes_and_normalisation(small: pa.Table, vocab: Vocab, text: TextVectors) -> None:
    model = make_model(vocab)
    b = collate(Featurizer(vocab, text).frame(small), np.arange(3))
    z, h = model(b)
    assert z.shape == (3, 16) and h is not None and h.shape == (3, 3, 32)
    assert torch.allclose(z.norm(dim=1), torch.ones(3), atol=1e-5)
    assert torch.allclose(model.embed(b), z, atol=1e-6)  # the [CLS]-only fast path gives the same vector


def test_padding_does_not_leak(small: pa.Table, vocab: Vocab, text: TextVectors) -> None:
    model = make_model(vocab)
    f = Featurizer(vocab, text).frame(small)
    alone = model.embed(collate(f, np.array([2])))
    padded = model.embed(collate(f, np.array([0, 2])))[1:]
    assert torch.allclose(alone, padded, atol=1e-6)


def test_empty_session_gets_a_vector(vocab: Vocab, text: TextVectors) -> None:
    model = make_model(vocab)
    f = Featurizer(vocab, text).frame(sessions_table([[], [event("bank.example/cards")]]))
    z = model.embed(collate(f, np.arange(2)))
    assert torch.isfinite(z).all() and torch.allclose(z.norm(dim=1), torch.ones(2), atol=1e-5)


def test_unseen_pages_use_url_and_text(vocab: Vocab, text: TextVectors) -> None:
    model = make_model(vocab)
    feat = Featurizer(vocab, text)

    def vec(page: str, title: str) -> torch.Tensor:
        b = collate(feat.frame(sessions_table([[event(page, title=title)]])), np.arange(1))
        return model.embed_events(b)[0, 1]  # the event's input vector (after [CLS])

    a = vec("bank.example/mortgages/new-fixed-rate", "Fixed rate mortgage")
    same_page_other_title = vec("bank.example/mortgages/new-fixed-rate", "Variable rate mortgage")
    other_url = vec("bank.example/cards/new-fixed-rate", "Fixed rate mortgage")
    assert not torch.allclose(a, same_page_other_title)  # text contributes
    assert not torch.allclose(a, other_url)  # URL tokens contribute even though both are OOV
    no_text = make_model(vocab, use_text=False)
    no_text.load_state_dict(model.state_dict())
    b1 = collate(feat.frame(sessions_table([[event("bank.example/x", title="one")]])), np.arange(1))
    b2 = collate(feat.frame(sessions_table([[event("bank.example/x", title="two")]])), np.arange(1))
    assert torch.allclose(no_text.embed(b1), no_text.embed(b2))  # the ablation really ignores text


# --- objectives --------------------------------------------------------------------------------------


def test_mask_events() -> None:
    lengths = np.array([1, 2, 5, 40, 0])
    m = mask_events(lengths, 0.25, np.random.default_rng(0))
    assert m.shape == (5, 40)
    assert not (m & (np.arange(40)[None] >= lengths[:, None])).any()  # never on padding
    assert (m[1:4].sum(1) >= 1).all()  # every session of >= 2 events has a masked event
    big = mask_events(np.full(2000, 20), 0.25, np.random.default_rng(1))
    assert abs(big.mean() - 0.25) < 0.01
    assert (mask_events(lengths, 0.25, np.random.default_rng(0)) == m).all()  # seeded


def test_sample_subsequences() -> None:
    lengths = np.array([1, 2, 7, 30, 0])
    rows, starts, lens = sample_subsequences(lengths, np.random.default_rng(0), n_views=2, min_fraction=0.5)
    assert rows.tolist() == [0, 1, 2, 3, 4] * 2  # view-major
    full = lengths[rows]
    assert (starts >= 0).all() and (starts + lens <= full).all()
    assert (lens >= np.minimum(full, np.maximum(1, np.ceil(0.5 * full)))).all()
    many = sample_subsequences(np.full(1000, 10), np.random.default_rng(1), 2, 0.5)
    assert set(many[2]) == set(range(5, 11)) and set(many[1]) == set(range(0, 6))


def test_page_dropout_uses_buckets(small: pa.Table, vocab: Vocab, text: TextVectors) -> None:
    b = collate(Featurizer(vocab, text).frame(small), np.arange(3))
    d = drop_pages(b, 1.0, np.random.default_rng(0))
    assert torch.equal(d.page, b.page_bucket) and torch.equal(d.url, b.url)


def test_contrastive_loss_prefers_aligned_views() -> None:
    z = torch.nn.functional.normalize(torch.randn(8, 16), dim=1)
    aligned = contrastive_loss(torch.cat([z, z]), 2, 0.1)
    shuffled = contrastive_loss(torch.cat([z, z[torch.randperm(8)]]), 2, 0.1)
    assert aligned < 0.1 < shuffled


# --- training ----------------------------------------------------------------------------------------


def test_training_loss_goes_down(trained: Any) -> None:
    val = [h["val_loss"] for h in trained.history]
    assert len(val) == 6 and val[-1] < val[0] * 0.9
    assert trained.stopped == "completed" and trained.model_version.startswith("encoder-")


def test_trained_encoder_separates_topics(trained: Any, toy: tuple[pa.Table, np.ndarray], text: TextVectors) -> None:
    from sklearn.linear_model import LogisticRegression

    emb = Embedder.from_bundle(trained.bundle, device="cpu", text_cache=text.cache_dir)
    z = emb.embed_sessions(toy[0])
    clf = LogisticRegression(max_iter=500).fit(z[:300], toy[1][:300])
    assert clf.score(z[300:], toy[1][300:]) > 0.6  # 5 topics: chance is 0.2


def test_training_is_deterministic(tmp_path: Path, text: TextVectors) -> None:
    table, _ = toy_sessions(60, seed=5, mean_events=5)
    cfg = TrainConfig(epochs=1, batch_size=16, warmup_steps=2, seed=3)
    tiny = EncoderConfig(d_model=16, n_layers=1, n_heads=2, d_ff=32, out_dim=8, dropout=0.1)
    a = train(table, tmp_path / "a", tiny, cfg, text=text, progress=False)
    b = train(table, tmp_path / "b", tiny, cfg, text=text, progress=False)
    assert (a.bundle / "encoder.safetensors").read_bytes() == (b.bundle / "encoder.safetensors").read_bytes()
    c = train(table, tmp_path / "c", tiny, TrainConfig(**{**cfg.__dict__, "seed": 4}), text=text, progress=False)
    assert (a.bundle / "encoder.safetensors").read_bytes() != (c.bundle / "encoder.safetensors").read_bytes()


def test_resume_after_time_budget_matches_uninterrupted(tmp_path: Path, text: TextVectors) -> None:
    table, _ = toy_sessions(80, seed=6, mean_events=5)
    tiny = EncoderConfig(d_model=16, n_layers=1, n_heads=2, d_ff=32, out_dim=8)
    cfg = TrainConfig(epochs=2, batch_size=16, warmup_steps=2, seed=1)
    full = train(table, tmp_path / "full", tiny, cfg, text=text, progress=False)
    cut = train(
        table, tmp_path / "cut", tiny, TrainConfig(**{**cfg.__dict__, "max_minutes": 1e-9}), text=text, progress=False
    )
    assert cut.stopped == "time_budget" and cut.steps == 1
    resumed = train(table, tmp_path / "cut", tiny, cfg, text=text, progress=False)
    assert resumed.steps == full.steps and resumed.stopped == "completed"
    w_full = (full.bundle / "encoder.safetensors").read_bytes()
    assert (resumed.bundle / "encoder.safetensors").read_bytes() == w_full
    other = TrainConfig(**{**cfg.__dict__, "lr": 1e-2})
    with pytest.raises(RuntimeError, match="other data or settings"):
        train(table, tmp_path / "cut", tiny, other, text=text, progress=False)


@pytest.mark.parametrize("switch", ["masked_weight", "contrastive_weight"])
def test_each_objective_can_be_switched_off(tmp_path: Path, text: TextVectors, switch: str) -> None:
    table, _ = toy_sessions(40, seed=8, mean_events=4)
    tiny = EncoderConfig(d_model=16, n_layers=1, n_heads=2, d_ff=32, out_dim=8)
    res = train(
        table, tmp_path / "b", tiny, TrainConfig(epochs=1, batch_size=16, **{switch: 0.0}), text=text, progress=False
    )
    keys = set(res.history[0])
    assert ("val_contrastive" in keys) == (switch == "masked_weight")
    assert ("val_page" in keys) == (switch == "contrastive_weight")


# --- embedding ---------------------------------------------------------------------------------------


def test_embed_file_streams_in_chunks(
    tmp_path: Path, trained: Any, toy: tuple[pa.Table, np.ndarray], text: TextVectors
) -> None:
    src = tmp_path / "sessions.parquet"
    pq.write_table(toy[0].slice(0, 50), src, row_group_size=16)
    out = tmp_path / "embeddings.parquet"
    stats = embed_file(src, trained.bundle, out, device="cpu", batch_size=5, chunk_rows=7, text_cache=text.cache_dir)
    got = pq.read_table(out)
    assert stats.sessions == 50 and got.schema.equals(EMBEDDINGS)
    assert got.column("session_id").to_pylist() == toy[0].column("session_id").to_pylist()[:50]
    assert set(got.column("model_version").to_pylist()) == {trained.model_version}
    emb = Embedder.from_bundle(trained.bundle, device="cpu", text_cache=text.cache_dir, batch_size=64)
    ref = emb.embed_sessions(toy[0].slice(0, 50))
    assert np.allclose(np.array(got.column("embedding").to_pylist()), ref, atol=1e-5)


def test_embed_one_matches_batch(trained: Any, toy: tuple[pa.Table, np.ndarray], text: TextVectors) -> None:
    emb = Embedder.from_bundle(trained.bundle, device="cpu", text_cache=text.cache_dir)
    batch = emb.embed_sessions(toy[0].slice(0, 20))
    for i in (0, 7, 19):
        events = toy[0].slice(i, 1).to_pylist()[0]["events"]
        assert np.allclose(emb.embed_one(events), batch[i], atol=1e-5)
    iso = [{**e, "ts": e["ts"].isoformat()} for e in toy[0].slice(0, 1).to_pylist()[0]["events"]]
    assert np.allclose(emb.embed_one(iso), batch[0], atol=1e-5)
    assert emb.embed_one([]).shape == (emb.out_dim,)


def test_bundle_round_trip_gives_same_vectors(tmp_path: Path, small: pa.Table, vocab: Vocab, text: TextVectors) -> None:
    model = make_model(vocab, seed=11)
    f = Featurizer(vocab, text).frame(small)
    before = model.embed(collate(f, np.arange(3))).numpy()
    save_encoder(tmp_path / "b", model, vocab, {"note": "test"})
    loaded, vocab2, version = load_encoder(tmp_path / "b")
    assert vocab2 == vocab and version.startswith("encoder-")
    after = Embedder(loaded, vocab2, version, text, "cpu").embed_sessions(small)
    assert np.allclose(before, after, atol=1e-6)


def test_cli_train_and_embed(tmp_path: Path, toy: tuple[pa.Table, np.ndarray], text: TextVectors) -> None:
    from click.testing import CliRunner

    from clickintent.cli import main

    src = tmp_path / "sessions.parquet"
    pq.write_table(toy[0].slice(0, 60), src)
    cache = ["--text-cache", str(text.cache_dir)]
    r = CliRunner().invoke(
        main,
        ["train", str(src), "--out", str(tmp_path / "bundle"), "--epochs", "1", "--dim", "16", "--out-dim", "8",
         "--layers", "1", "--batch-size", "16", "--text-model", "hashing-384", "--device", "cpu", *cache],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "model_version encoder-" in r.output
    out = tmp_path / "emb.parquet"
    r = CliRunner().invoke(main, ["embed", str(src), "--bundle", str(tmp_path / "bundle"), "--out", str(out), *cache])
    assert r.exit_code == 0, r.output
    assert pq.read_table(out).num_rows == 60
    (tmp_path / "bundle" / "vocab.json").write_text("{}")
    r = CliRunner().invoke(main, ["embed", str(src), "--bundle", str(tmp_path / "bundle"), "--out", str(out), *cache])
    assert r.exit_code != 0 and "checksum" in r.output
