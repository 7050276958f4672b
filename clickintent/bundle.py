"""The model bundle: one directory, one version, every file checksummed in manifest.json.

A bundle holds the parts that serving and batch jobs load together (DESIGN.md): `encoder.safetensors` +
`encoder.json` + `vocab.json` today; `taxonomy.json` and `classifier.safetensors` + json later. Each part
registers as a *component* with its own version and list of files, so adding the classifier does not
change the encoder's version (the `model_version` written beside embeddings).

`load_bundle` verifies the format version and the sha256 of every listed file, and refuses missing or
unlisted files; `Bundle.read_*` re-check the bytes they return, so a file swapped after loading is caught
too. Versions are derived from the content: the bundle's and each component's version are recomputed at
load from the files' verified digests (and must equal what the manifest says), so different weights
always report a different `bundle_version` and `model_version`, even under a manifest someone re-signed
(issue 17). A `BundleError` says what is wrong in words (`reason`, safe to show a client) beside its full
message (paths and library errors, for the log). Weights are safetensors, everything else JSON: nothing
here uses pickle. What it leaves out: signing (a checksum detects accidents and tampering with the
files, and the content-derived version exposes a forged manifest; it does not authenticate who made it)
and remote storage.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
FORMAT = "clickintent-bundle"
FORMAT_VERSION = 1


class BundleError(Exception):
    """A bundle is missing, incomplete, tampered with, or from an incompatible version.

    `str(error)` is the full message for the operator's log (it may name server paths); `reason` says what
    is wrong in words, without paths or library errors, for an HTTP client."""

    def __init__(self, message: str, reason: str = "the bundle could not be loaded") -> None:
        super().__init__(message)
        self.reason = reason


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("clickintent", "torch", "safetensors", "numpy", "pyarrow"):
        with contextlib.suppress(PackageNotFoundError):
            out[name] = version(name)
    return out


def component_version(name: str, files: Mapping[str, bytes]) -> str:
    """`name-<12 hex>`: a digest of the component's file names and contents."""
    return _component_digest(name, {fname: sha256_bytes(data) for fname, data in files.items()})


def _component_digest(name: str, digests: Mapping[str, str]) -> str:
    h = hashlib.sha256(name.encode())
    for fname in sorted(digests):
        h.update(fname.encode() + b"\x00" + digests[fname].encode())
    return f"{name}-{h.hexdigest()[:12]}"


def _bundle_digest(files: Mapping[str, Mapping[str, Any]]) -> str:
    """The bundle version: a digest of every file name and content digest."""
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(f"{name}\x00{files[name]['sha256']}\n".encode())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class Bundle:
    """A verified bundle directory. Read its files through the `read_*` methods (they re-verify)."""

    path: Path
    manifest: dict[str, Any]

    @property
    def files(self) -> list[str]:
        return sorted(self.manifest["files"])

    @property
    def components(self) -> dict[str, dict[str, Any]]:
        return dict(self.manifest["components"])

    @property
    def version(self) -> str:
        """The bundle's version: changes when any file changes."""
        return str(self.manifest["bundle_version"])

    def component(self, name: str) -> dict[str, Any]:
        try:
            return dict(self.manifest["components"][name])
        except KeyError:
            raise BundleError(
                f"bundle {self.path} has no {name!r} component (it has: {', '.join(self.components) or 'none'})",
                f"the bundle has no {name} component",
            ) from None

    def has(self, name: str) -> bool:
        return name in self.manifest["files"]

    def read_bytes(self, name: str) -> bytes:
        if name not in self.manifest["files"]:
            raise BundleError(f"bundle {self.path} has no file {name!r}", f"the bundle has no file {name}")
        data = (self.path / name).read_bytes()
        _check_file(self.path, name, data, self.manifest["files"][name])
        return data

    def read_json(self, name: str) -> Any:
        try:
            return json.loads(self.read_bytes(name))
        except json.JSONDecodeError as exc:
            raise BundleError(f"{self.path / name} is not valid JSON: {exc}", f"{name} is not valid JSON") from exc

    def read_tensors(self, name: str) -> dict[str, Any]:
        """A safetensors file as torch tensors (parsed from the verified bytes)."""
        from safetensors.torch import load

        try:
            return load(self.read_bytes(name))
        except Exception as exc:  # safetensors raises its own error types
            raise BundleError(
                f"{self.path / name} is not a valid safetensors file: {exc}", f"{name} is not a valid safetensors file"
            ) from exc


def _check_file(root: Path, name: str, data: bytes, entry: Mapping[str, Any]) -> None:
    if len(data) != entry["bytes"] or sha256_bytes(data) != entry["sha256"]:
        raise BundleError(
            f"bundle file {root / name} does not match its checksum in {MANIFEST} "
            f"(expected sha256 {entry['sha256'][:16]}..., {entry['bytes']} bytes; got "
            f"{sha256_bytes(data)[:16]}..., {len(data)} bytes): the bundle was modified or is incomplete; "
            "rebuild it rather than editing files in place",
            f"{name} does not match its checksum (the bundle was modified or is incomplete)",
        )


def _read_manifest(path: Path) -> dict[str, Any]:
    if not path.is_dir():
        raise BundleError(f"bundle directory {path} does not exist", "the bundle directory does not exist")
    mpath = path / MANIFEST
    if not mpath.is_file():
        raise BundleError(f"{path} is not a clickintent bundle: {MANIFEST} is missing", f"{MANIFEST} is missing")
    try:
        manifest = json.loads(mpath.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{mpath} is not valid JSON: {exc}", f"{MANIFEST} is not valid JSON") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BundleError(f"{mpath} is not a clickintent bundle manifest", f"{MANIFEST} is not a bundle manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BundleError(
            f"bundle {path} has format version {manifest.get('format_version')}, this clickintent reads "
            f"version {FORMAT_VERSION}: rebuild the bundle with this version",
            f"the bundle's format version is not {FORMAT_VERSION}: rebuild it with this version",
        )
    files, components = manifest.get("files"), manifest.get("components")
    if (
        not isinstance(files, dict) or not isinstance(components, dict)
        or not all(isinstance(e, dict) and isinstance(e.get("sha256"), str) and isinstance(e.get("bytes"), int)
                   for e in files.values())
        or not all(isinstance(c, dict) and isinstance(c.get("files", []), list) for c in components.values())
    ):  # fmt: skip
        raise BundleError(f"{mpath} lacks its 'files' or 'components' table", f"{MANIFEST} is malformed")
    return manifest


def load_bundle(path: str | Path) -> Bundle:
    """Open and verify the bundle at `path`; raise BundleError with the reason if it is not intact."""
    root = Path(path)
    manifest = _read_manifest(root)
    listed = set(manifest["files"])
    present = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and p.name != MANIFEST}
    if missing := sorted(listed - present):
        raise BundleError(f"bundle {root} is incomplete: missing {', '.join(missing)}", "the bundle is incomplete")
    if extra := sorted(present - listed):
        raise BundleError(
            f"bundle {root} holds files its {MANIFEST} does not list: {', '.join(extra)} "
            "(add files with clickintent.bundle.add_to_bundle, not by copying)",
            f"the bundle holds files its {MANIFEST} does not list",
        )
    for name in sorted(listed):
        _check_file(root, name, (root / name).read_bytes(), manifest["files"][name])
    # The files are now known to match their digests, so versions derived from the digests are derived
    # from the content; a manifest that claims other versions was edited, and is refused.
    claimed = {"bundle": manifest.get("bundle_version")}
    derived = {"bundle": _bundle_digest(manifest["files"])}
    for cname, comp in manifest["components"].items():
        if unknown := [f for f in comp.get("files", []) if f not in listed]:
            raise BundleError(
                f"component {cname!r} of bundle {root} names unlisted files {unknown}", f"{MANIFEST} is malformed"
            )
        claimed[cname] = comp.get("version")
        derived[cname] = _component_digest(cname, {f: manifest["files"][f]["sha256"] for f in comp.get("files", [])})
    if wrong := sorted(k for k in derived if claimed[k] != derived[k]):
        raise BundleError(
            f"bundle {root}: the versions in {MANIFEST} do not match its files ({', '.join(wrong)}): the manifest "
            "was edited by hand; rebuild the bundle",
            f"the versions in {MANIFEST} do not match the bundle's files",
        )
    return Bundle(root, manifest)


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def add_to_bundle(
    path: str | Path,
    component: str,
    files: Mapping[str, bytes],
    info: Mapping[str, Any] | None = None,
) -> Bundle:
    """Write (or replace) one component's files into the bundle at `path` and rewrite the manifest.

    Creates the bundle if `path` has none; otherwise verifies it first, so a tampered bundle is never
    re-signed. Files of an earlier version of the same component that it no longer lists are removed.
    `info` is stored with the component (e.g. the model config or training summary).
    """
    root = Path(path)
    for name in files:
        if name == MANIFEST or name.startswith((".", "/")) or ".." in Path(name).parts:
            raise BundleError(f"invalid bundle file name {name!r}")
    if (root / MANIFEST).exists():
        manifest = load_bundle(root).manifest
    else:
        if root.exists() and any(root.iterdir()):
            raise BundleError(f"{root} exists, is not empty and is not a bundle: refusing to write into it")
        manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "components": {}, "files": {}}
    old = manifest["components"].get(component, {}).get("files", [])
    for other, comp in manifest["components"].items():
        if other != component and (clash := set(comp.get("files", [])) & set(files)):
            raise BundleError(f"files {sorted(clash)} already belong to component {other!r}")
    for name in old:
        if name not in files:
            (root / name).unlink(missing_ok=True)
            manifest["files"].pop(name, None)
    for name, data in files.items():
        _write_atomic(root / name, data)
        manifest["files"][name] = {"sha256": sha256_bytes(data), "bytes": len(data)}
    manifest["components"][component] = {
        **dict(info or {}),
        "version": component_version(component, files),
        "files": sorted(files),
    }
    manifest["bundle_version"] = _bundle_digest(manifest["files"])
    manifest["created_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    manifest["versions"] = _library_versions()
    _write_atomic(root / MANIFEST, (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode())
    return load_bundle(root)


def json_bytes(data: Any) -> bytes:
    """Stable, human-readable JSON for bundle files."""
    return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()
