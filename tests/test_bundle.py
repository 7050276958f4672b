"""The model bundle: round trip, components and versions, and refusal of tampered or mismatched bundles."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from clickintent.bundle import MANIFEST, Bundle, BundleError, add_to_bundle, json_bytes, load_bundle
from clickintent.encoder.features import Vocab
from clickintent.encoder.io import load_encoder, save_encoder
from clickintent.encoder.model import EncoderConfig, SessionEncoder

VOCAB = Vocab(pages=["a.example/x", "a.example/y"], categories={"event_type": ["click", "page_view"],
              "device": ["desktop"]}, n_page_buckets=8, text_model="hashing-384")  # fmt: skip
CFG = EncoderConfig(d_model=16, n_layers=1, n_heads=2, d_ff=32, out_dim=8)


@pytest.fixture()
def encoder_bundle(tmp_path: Path) -> Bundle:
    torch.manual_seed(0)
    model = SessionEncoder(CFG.for_vocab(VOCAB))
    return save_encoder(tmp_path / "bundle", model, VOCAB, {"epochs": 1})


def test_round_trip(encoder_bundle: Bundle) -> None:
    b = load_bundle(encoder_bundle.path)
    assert b.files == ["encoder.json", "encoder.safetensors", "vocab.json"]
    assert b.read_json("vocab.json")["pages"] == VOCAB.pages
    manifest = json.loads((b.path / MANIFEST).read_text())
    assert manifest["versions"]["torch"] == torch.__version__ and manifest["format"] == "clickintent-bundle"
    assert set(manifest["files"]["encoder.safetensors"]) == {"sha256", "bytes"}
    model, vocab, version = load_encoder(b)
    assert vocab == VOCAB and version == b.component("encoder")["version"]
    torch.manual_seed(0)
    ref = SessionEncoder(CFG.for_vocab(VOCAB))
    for (k, v), (k2, v2) in zip(model.state_dict().items(), ref.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(v, v2)


def test_files_are_json_or_safetensors_never_pickle(encoder_bundle: Bundle) -> None:
    for name in encoder_bundle.files:
        data = (encoder_bundle.path / name).read_bytes()
        if name.endswith(".json"):
            json.loads(data)
        else:
            header_len = int.from_bytes(data[:8], "little")  # safetensors: u64 header size + JSON header
            json.loads(data[8 : 8 + header_len])
        assert not data.startswith(b"\x80")  # no pickle protocol marker
    src = Path(__file__).resolve().parents[1] / "clickintent"
    code = "\n".join(p.read_text() for p in [*(src / "encoder").glob("*.py"), src / "bundle.py"])
    assert not re.search(r"^\s*(import pickle|from pickle)|torch\.load\(", code, re.M)


def test_components_are_versioned_independently(encoder_bundle: Bundle) -> None:
    enc = encoder_bundle.component("encoder")["version"]
    b = add_to_bundle(encoder_bundle.path, "taxonomy", {"taxonomy.json": json_bytes({"intents": ["a"]})})
    assert b.component("encoder")["version"] == enc  # adding a part leaves the encoder's version alone
    assert b.version != encoder_bundle.version  # ... but the bundle's version changes
    b2 = add_to_bundle(b.path, "taxonomy", {"taxonomy.json": json_bytes({"intents": ["a", "b"]})})
    assert b2.component("taxonomy")["version"] != b.component("taxonomy")["version"]
    assert load_bundle(b2.path).read_json("taxonomy.json") == {"intents": ["a", "b"]}
    with pytest.raises(BundleError, match="already belong"):
        add_to_bundle(b.path, "classifier", {"taxonomy.json": b"{}"})
    with pytest.raises(BundleError, match="no 'classifier' component"):
        b2.component("classifier")


def test_tampered_file_is_refused(encoder_bundle: Bundle) -> None:
    path = encoder_bundle.path / "encoder.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"encoder\.safetensors does not match its checksum"):
        load_bundle(encoder_bundle.path)
    with pytest.raises(BundleError):  # a bundle that fails verification is never re-signed
        add_to_bundle(encoder_bundle.path, "taxonomy", {"taxonomy.json": b"{}"})


def test_file_swapped_after_loading_is_caught(encoder_bundle: Bundle) -> None:
    b = load_bundle(encoder_bundle.path)
    (b.path / "vocab.json").write_text(json.dumps({**VOCAB.to_json(), "pages": ["evil"]}))
    with pytest.raises(BundleError, match="checksum"):
        b.read_json("vocab.json")


def test_missing_and_unlisted_files_are_refused(encoder_bundle: Bundle, tmp_path: Path) -> None:
    (encoder_bundle.path / "notes.txt").write_text("hi")
    with pytest.raises(BundleError, match=r"does not list: notes\.txt"):
        load_bundle(encoder_bundle.path)
    (encoder_bundle.path / "notes.txt").unlink()
    (encoder_bundle.path / "vocab.json").unlink()
    with pytest.raises(BundleError, match=r"missing vocab\.json"):
        load_bundle(encoder_bundle.path)
    with pytest.raises(BundleError, match=r"manifest\.json is missing"):
        load_bundle(tmp_path)
    with pytest.raises(BundleError, match="does not exist"):
        load_bundle(tmp_path / "nope")


def test_other_format_version_is_refused(encoder_bundle: Bundle) -> None:
    mpath = encoder_bundle.path / MANIFEST
    manifest = json.loads(mpath.read_text())
    mpath.write_text(json.dumps({**manifest, "format_version": 99}))
    with pytest.raises(BundleError, match="format version 99"):
        load_bundle(encoder_bundle.path)


def test_mismatched_config_and_weights_are_refused(encoder_bundle: Bundle) -> None:
    # A bundle whose checksums are right but whose parts disagree (e.g. files from two trainings).
    files = {n: (encoder_bundle.path / n).read_bytes() for n in encoder_bundle.files}
    cfg = json.loads(files["encoder.json"])
    cfg["config"]["d_model"] = 32
    cfg["config"]["d_ff"] = 64
    add_to_bundle(encoder_bundle.path, "encoder", {**files, "encoder.json": json_bytes(cfg)})
    with pytest.raises(BundleError, match=r"encoder\.safetensors .* does not fit encoder\.json"):
        load_encoder(encoder_bundle.path)
    vocab = {**VOCAB.to_json(), "pages": [*VOCAB.pages, "a.example/z"]}
    add_to_bundle(encoder_bundle.path, "encoder", {**files, "vocab.json": json_bytes(vocab)})
    with pytest.raises(BundleError, match=r"do not agree: .*n_page_ids"):
        load_encoder(encoder_bundle.path)


def test_refuses_to_write_into_a_foreign_directory(tmp_path: Path) -> None:
    (tmp_path / "data.csv").write_text("x")
    with pytest.raises(BundleError, match="not a bundle"):
        add_to_bundle(tmp_path, "encoder", {"encoder.json": b"{}"})
    with pytest.raises(BundleError, match="invalid bundle file name"):
        add_to_bundle(tmp_path / "b", "encoder", {"../escape.json": b"{}"})


def _resign(path: Path, name: str, data: bytes) -> dict[str, object]:
    """Change one file and rewrite its checksum in the manifest, as someone editing a bundle by hand would."""
    import hashlib

    (path / name).write_bytes(data)
    mpath = path / MANIFEST
    manifest = json.loads(mpath.read_text())
    manifest["files"][name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    mpath.write_text(json.dumps(manifest))
    return manifest


def test_versions_come_from_the_content_not_the_manifest(encoder_bundle: Bundle) -> None:
    # Issue 17: changed weights under a re-signed manifest kept the old bundle_version and model_version.
    path = encoder_bundle.path
    weights = bytearray((path / "encoder.safetensors").read_bytes())
    weights[-1] ^= 0x01
    manifest = _resign(path, "encoder.safetensors", bytes(weights))
    with pytest.raises(BundleError, match=r"versions in manifest\.json do not match") as info:
        load_bundle(path)  # the checksums match, the claimed versions do not
    assert info.value.reason == "the versions in manifest.json do not match the bundle's files"
    # Re-signing the versions too only gives the bundle the versions its content has: new ones.
    old_bundle, old_model = encoder_bundle.version, encoder_bundle.component("encoder")["version"]
    files = {n: (path / n).read_bytes() for n in encoder_bundle.files}
    fixed = add_to_bundle(path.parent / "resigned", "encoder", files)
    assert fixed.version != old_bundle and fixed.component("encoder")["version"] != old_model
    manifest["bundle_version"] = fixed.version
    manifest["components"]["encoder"]["version"] = fixed.component("encoder")["version"]  # type: ignore[index]
    (path / MANIFEST).write_text(json.dumps(manifest))
    assert load_bundle(path).version == fixed.version


@pytest.mark.parametrize("break_it", ["tamper", "missing", "manifest", "format"])
def test_refusals_say_what_is_wrong_without_paths(encoder_bundle: Bundle, break_it: str) -> None:
    path = encoder_bundle.path
    if break_it == "tamper":
        (path / "vocab.json").write_text("{}")
    elif break_it == "missing":
        (path / "vocab.json").unlink()
    elif break_it == "manifest":
        (path / MANIFEST).write_text("{not json")
    else:
        (path / MANIFEST).write_text(json.dumps({**json.loads((path / MANIFEST).read_text()), "format_version": 9}))
    with pytest.raises(BundleError) as info:
        load_bundle(path)
    assert str(path) in str(info.value)  # the log gets the detail ...
    reason = info.value.reason
    assert str(path.parent) not in reason and "/" not in reason and "Error" not in reason  # ... a client words
