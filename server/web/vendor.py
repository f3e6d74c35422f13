"""Copy the pages' front-end files from npm's node_modules into camgate_server's static files.

    cd server/web && npm ci --ignore-scripts     # what package-lock.json pins, integrity checked
    python3 vendor.py                            # copy, and write vendor/MANIFEST.json
    python3 vendor.py --check                    # the committed copy is what the lock file pins

The copy is committed (server/src/camgate_server/pages/static/vendor/), so ``uv sync`` and a
wheel need neither npm nor the network. MANIFEST.json records, for each package, the version
and the npm integrity (SHA-512 of the tarball) that package-lock.json pins, and the SHA-256 of
every file copied. ``--check`` verifies the committed files against the manifest, the manifest
against package-lock.json, and, when node_modules is installed, the copy against it byte for
byte; server/tests/test_pages_assets.py runs it. axe-core is not copied: it is the browser
tests' accessibility check, loaded by them from node_modules, never served to anyone.

Standard library only; exits 1 with a message naming the first difference.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
LOCK = HERE / "package-lock.json"
MODULES = HERE / "node_modules"
VENDOR = HERE.parent / "src" / "camgate_server" / "pages" / "static" / "vendor"
MANIFEST = VENDOR / "MANIFEST.json"

#: package → the files of it the pages serve (paths inside the npm package). Each is copied to
#: vendor/<package>/<path without its leading "dist/"> (a "dist/" folder is git-ignored here).
FILES: dict[str, list[str]] = {
    "leaflet": [
        "LICENSE",
        "dist/leaflet.js",
        "dist/leaflet.css",
        "dist/images/layers.png",
        "dist/images/layers-2x.png",
        "dist/images/marker-icon.png",
        "dist/images/marker-icon-2x.png",
        "dist/images/marker-shadow.png",
    ],
}


def _target(name: str, file: str) -> Path:
    return VENDOR / name / file.removeprefix("dist/")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _pinned() -> dict[str, dict[str, str]]:
    packages = json.loads(LOCK.read_text())["packages"]
    return {
        name: {
            "version": packages[f"node_modules/{name}"]["version"],
            "integrity": packages[f"node_modules/{name}"]["integrity"],
        }
        for name in FILES
    }


def vendor() -> None:
    """Copy FILES from node_modules (which must hold the pinned versions) and write the
    manifest."""
    manifest: dict[str, dict[str, object]] = {}
    for name, pin in _pinned().items():
        installed = json.loads((MODULES / name / "package.json").read_text())["version"]
        if installed != pin["version"]:
            sys.exit(f"node_modules/{name} is {installed}, the lock pins {pin['version']}: npm ci")
        target = VENDOR / name
        shutil.rmtree(target, ignore_errors=True)
        hashes = {}
        for file in FILES[name]:
            dest = _target(name, file)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(MODULES / name / file, dest)
            hashes[file] = _sha256(dest)
        manifest[name] = pin | {"files": hashes}
    MANIFEST.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    print(f"vendored {', '.join(manifest)} into {VENDOR}")


def check() -> list[str]:
    """Every difference between the committed copy, its manifest, the lock file and (when
    installed) node_modules; empty when they agree."""
    problems = []
    manifest = json.loads(MANIFEST.read_text())
    for name, pin in _pinned().items():
        entry = manifest.get(name)
        if entry is None:
            problems.append(f"{name} is not in {MANIFEST.name}")
            continue
        for key in ("version", "integrity"):
            if entry[key] != pin[key]:
                problems.append(f"{name}: the manifest's {key} is not the lock file's")
        if sorted(entry["files"]) != sorted(FILES[name]):
            problems.append(f"{name}: the manifest lists other files than vendor.py copies")
        for file, digest in entry["files"].items():
            copy = _target(name, file)
            if not copy.is_file() or _sha256(copy) != digest:
                problems.append(f"{name}/{file}: missing or changed since vendored")
            source = MODULES / name / file
            if source.is_file() and _sha256(source) != digest:
                problems.append(f"{name}/{file}: differs from node_modules (run vendor.py)")
    return problems


if __name__ == "__main__":
    if sys.argv[1:] == ["--check"]:
        found = check()
        for problem in found:
            print(problem, file=sys.stderr)
        sys.exit(1 if found else 0)
    vendor()
