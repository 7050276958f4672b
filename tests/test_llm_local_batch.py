"""The local backend scores every choice in one llama.cpp batch (a token trie over parallel KV-cache
sequences): the real Gemma 3 270M against the one-decode-per-choice path, plus the batch plan helpers.

What holds on every CPU, and what is only bounded (issue 16). llama.cpp's CPU kernels round differently
with the number of tokens in a decode (the per-choice path decodes [prompt's last token, choice tokens],
1-4 tokens; the batch 8 or more) and with the instructions the build uses, and on this 4-bit model a
last-bit difference grows to a tenth of a log-probability or more by the last layer. Measured with
`python -m benchmarks.bench_llm_paths` (docs/BENCHMARKS.md, issue 16), batched vs per-choice on one build:
first tokens up to 0.093 apart on the AVX2 build the Makefile installs and 0.158 on an AVX-512 build
(-march=native on an AMD EPYC), whole choices 0.161 and 0.249; the same path on the two builds: whole
choices up to 0.76 apart, but the top choice was the same everywhere. So:
- exact (1e-6) only where both numbers come from the same computation: one row of one batch predicts
  every first token that choices share; the same prompt and choices give the same scores whatever the
  cache held before;
- the same top choice on both paths, and a ranking that differs only between choices closer than
  FIRST_TOKEN_TOL;
- first tokens within FIRST_TOKEN_TOL and whole choices within CHOICE_TOL (about 1.6x and 3x the largest
  difference measured between the paths).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from clickintent.llm import LLMError, Request, llama_internals
from clickintent.llm.local import _groups, _trie

LABELS = (
    "Access trouble",
    "Fraud dispute",
    "Rewards card",
    "Card",
    "Card activation lock",
    "Savings rates",
    "Credit building",
    "Open checking",
    "Mortgage purchase",
    "Mortgage refinance",
    "Home equity",
    "Investing research",
    "Other",
)
PREFIX = (
    "Visits to a bank's web site, one line per event. Each visit gets exactly one label from this list:\n"
    + "".join(f"- {name}\n" for name in LABELS)
    + '\n### Visit\n1. page_view page="/mortgages/refinance" title="Refinance your mortgage"\n'
    '2. search query="refinance rates today"\n### Label: Mortgage refinance\n\n'
    '### Visit\n1. login page="/app/login"\n2. page_view page="/app/cards/activate" title="Activate card"\n'
    "### Label: Card activation lock\n\n"
    '### Visit\n1. page_view page="/savings" title="Savings accounts"\n'
    '2. page_view page="/savings/cd-rates" title="CD rates"\n### Label: Savings rates\n\n'
)
VISITS = (
    '1. page_view page="/cards/rewards" title="Travel rewards card"\n2. search query="best cash back card"',
    '1. login page="/app/login"\n2. page_view page="/app/disputes/new" title="Dispute a charge"',
    '1. page_view page="/invest" title="Investing"\n2. page_view page="/invest/ira" title="Open an IRA"',
)


FIRST_TOKEN_TOL = 0.25  # |batched - per-choice| of a first token's log-probability: measured up to 0.158
CHOICE_TOL = 0.75  # the same for a whole choice (the sum of its tokens): measured up to 0.249


def prompt(visit: str) -> str:
    return f"{PREFIX}### Visit\n{visit}\n### Label:"


# -- the batch plan, no model ---------------------------------------------------------------------


def test_trie_shares_leading_tokens_and_gives_each_branch_a_sequence() -> None:
    conts = [[5], [7, 8], [7, 9], [7, 8, 4], [6, 1, 2]]
    nodes, rows, seqs = _trie(conts)
    # The root (the prompt's last token) once, then every proper prefix once, parents first.
    assert nodes == [(), (7,), (7, 8), (6,), (6, 1)]
    assert rows == [[0], [0, 1], [0, 1], [0, 1, 2], [0, 3, 4]]
    # Leaves (7, 8) and (6, 1) are the branches; a node belongs to the branches below it.
    assert seqs == [[1, 2], [1], [1], [2], [2]]
    for k, key in enumerate(nodes):
        if key:
            assert set(seqs[k]) <= set(seqs[nodes.index(key[:-1])])


def test_groups_respect_sequence_and_batch_limits() -> None:
    conts = [[i % 3, i] for i in range(10)] + [[]]
    groups = _groups(conts, max_paths=4, max_nodes=6)
    assert sorted(i for g in groups for i in g) == list(range(10))  # the empty continuation needs no decode
    for g in groups:
        nodes, _, seqs = _trie([conts[i] for i in g])
        assert len(g) <= 4 and len(nodes) <= 6 and max(max(s) for s in seqs) <= 4


def test_the_internals_refuse_a_llama_cpp_release_they_were_not_checked_against(tmp_path: Path) -> None:
    low, high = llama_internals.SUPPORTED
    llama_internals.check_version(".".join(map(str, low)) + "+cpu")  # a local build tag is not a version
    for version in (".".join(map(str, high)), "0.3.35", "1.0.0"):
        with pytest.raises(LLMError, match=r"llama-cpp-python .* is installed.*pip install"):
            llama_internals.check_version(version)
    with pytest.raises(LLMError, match="cannot read"):
        llama_internals.check_version("dev")


def test_the_backend_checks_the_installed_release_before_loading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    llama_cpp = pytest.importorskip("llama_cpp", reason="needs the llm-local extra")
    from clickintent.llm.local import LocalBackend

    monkeypatch.setattr(llama_cpp, "__version__", "0.4.0")
    with pytest.raises(LLMError, match=r"llama-cpp-python 0\.4\.0 is installed"):
        LocalBackend(tmp_path / "missing.gguf").load()


# -- the real model -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gguf() -> Path:
    pytest.importorskip("llama_cpp", reason="needs the llm-local extra: pip install 'clickintent[llm-local]'")
    from clickintent.llm.local import default_model_path

    return default_model_path()


@pytest.fixture(scope="module")
def backends(gguf: Path) -> tuple[object, object]:
    from clickintent.llm.local import LocalBackend

    batched = LocalBackend(gguf, n_ctx=1024, progress=False)
    single = LocalBackend(gguf, n_ctx=1024, progress=False, batch_choices=False)
    batched.load()
    single.load()
    assert batched._seq_batch is not None, "the context was not built with parallel sequences"
    assert single._seq_batch is None
    return batched, single


@pytest.mark.integration
def test_batched_logprobs_match_one_decode_per_choice(backends: tuple) -> None:
    batched, single = backends
    for visit in VISITS:
        got = batched.choice_token_logprobs(prompt(visit), LABELS)
        want = single.choice_token_logprobs(prompt(visit), LABELS)
        assert {n for n in LABELS if len(got[n]) == 1}, "no single-token choice was tested"
        assert len({len(v) for v in got.values()}) >= 3, "choices of several token lengths"
        for name in LABELS:
            assert len(got[name]) == len(want[name])
            assert got[name][0] == pytest.approx(want[name][0], abs=FIRST_TOKEN_TOL), name
            assert sum(got[name]) == pytest.approx(sum(want[name]), abs=CHOICE_TOL), name
        a = {n: sum(got[n]) for n in LABELS}
        b = {n: sum(want[n]) for n in LABELS}
        assert max(LABELS, key=a.__getitem__) == max(LABELS, key=b.__getitem__)
        for x in LABELS:  # a pair may swap places only when the two are within the first-token tolerance
            for y in LABELS:
                if (a[x] - a[y]) * (b[x] - b[y]) < 0:
                    assert max(abs(a[x] - a[y]), abs(b[x] - b[y])) < FIRST_TOKEN_TOL, (x, y)
        # One row predicts every first token: "Card" and "Card activation lock" start alike.
        assert got["Card"][0] == pytest.approx(got["Card activation lock"][0], abs=1e-6)
        assert got["Mortgage purchase"][0] == pytest.approx(got["Mortgage refinance"][0], abs=1e-6)


@pytest.mark.integration
def test_batched_scores_depend_only_on_the_prompt_not_on_the_cache(backends: tuple) -> None:
    batched, _ = backends
    first = batched.run_one(Request(prompt(VISITS[0]), choices=LABELS), "labels").choice_logprobs
    batched.run_one(Request(prompt(VISITS[1]), choices=LABELS), "labels")  # only the visit is evaluated again
    again = batched.run_one(Request(prompt(VISITS[0]), choices=LABELS, seed=1), "labels")
    assert again.choice_logprobs == pytest.approx(first, abs=1e-6)
    assert again.text == max(LABELS, key=lambda n: again.choice_logprobs[n])  # type: ignore[index]
    batched.run_one(Request("Unrelated text that shares no prefix.\n### Label:", choices=LABELS[:2]), "labels")
    repeat = batched.run_one(Request(prompt(VISITS[0]), choices=LABELS, seed=2), "labels")
    assert repeat.choice_logprobs == pytest.approx(first, abs=1e-6)


@pytest.mark.integration
def test_the_shared_prefix_is_evaluated_once(backends: tuple) -> None:
    batched, _ = backends
    llm = batched.load()
    n0 = len(llm.tokenize(prompt(VISITS[2]).encode(), add_bos=True))
    batched.choice_token_logprobs(prompt(VISITS[2]), LABELS)
    before = batched.prompt_tokens_evaluated
    batched.choice_token_logprobs(prompt(VISITS[1]), LABELS)
    n1 = len(llm.tokenize(prompt(VISITS[1]).encode(), add_bos=True))
    shared = len(llm.tokenize(f"{PREFIX}### Visit\n".encode(), add_bos=True))
    evaluated = batched.prompt_tokens_evaluated - before
    assert 0 < evaluated <= n1 - shared + 2 and n0 > shared + 10
    # The cache holds exactly the prompt but its last token, in sequence 0 alone.
    assert llm.n_tokens == n1 - 1


@pytest.mark.integration
def test_more_choices_than_sequences_are_scored_in_several_batches(gguf: Path, backends: tuple) -> None:
    from clickintent.llm.local import LocalBackend

    batched, _ = backends
    small = LocalBackend(gguf, n_ctx=1024, n_seq_max=5, progress=False)  # 3 branches per batch
    got = small.choice_token_logprobs(prompt(VISITS[0]), LABELS)
    want = batched.choice_token_logprobs(prompt(VISITS[0]), LABELS)
    for name in LABELS:
        # Batches of other sizes: the root row is computed in each, alike but not bit for bit.
        assert got[name][0] == pytest.approx(want[name][0], abs=FIRST_TOKEN_TOL), name
        assert sum(got[name]) == pytest.approx(sum(want[name]), abs=CHOICE_TOL), name
    again = small.choice_token_logprobs(prompt(VISITS[0]), LABELS)
    assert all(again[n] == pytest.approx(got[n], abs=1e-6) for n in LABELS)
