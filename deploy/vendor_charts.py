"""Vendor the folder's chart library from npm: ``make vendor-charts``.

Fetches the pinned packages with ``npm pack`` (npm checks each tarball against
the registry's integrity hash), copies their minified browser builds and
licences to ``node/folder/static/vendor/``, and records versions and SHA-256
digests in ``VENDORED.json``. The folder serves these files itself: the pages
make no external request. Run it again to move to newer versions (edit PINS).

vega-interpreter ships only as an ES module importing three helpers from
vega-util; those are on the ``vega`` global of vega.min.js too, so the module
is wrapped into a script that reads them from there and sets
``window.vegaInterpreter``. With it Vega evaluates expressions without
``eval``/``Function``, which the folder's CSP forbids.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

PINS = {
    "vega": "6.4.0",
    "vega-lite": "6.4.3",
    "vega-embed": "7.3.0",
    "vega-interpreter": "2.3.2",
}
BUILDS = {
    "vega": "build/vega.min.js",
    "vega-lite": "build/vega-lite.min.js",
    "vega-embed": "build/vega-embed.min.js",
    "vega-interpreter": "build/vega-interpreter.js",
}
DEST = Path(__file__).resolve().parents[1] / "node" / "folder" / "static" / "vendor"
_IMPORT = "import { ascending, isString, DisallowedObjectProperties } from 'vega-util';"
_EXPORT = "export { expression as expressionInterpreter };"


def wrap_interpreter(source: str) -> str:
    if _IMPORT not in source or _EXPORT not in source:
        sys.exit("vega-interpreter's module header changed: update deploy/vendor_charts.py")
    body = source.replace(_IMPORT, "").replace(_EXPORT, "")
    return (
        "/* vega-interpreter, wrapped for a script tag by deploy/vendor_charts.py */\n"
        "(function (vega) {\n'use strict';\n"
        "const { ascending, isString, DisallowedObjectProperties } = vega;\n"
        f"{body}\n"
        "window.vegaInterpreter = { expressionInterpreter: expression };\n"
        "})(window.vega);\n"
    )


def main() -> None:
    DEST.mkdir(parents=True, exist_ok=True)
    record: dict[str, dict[str, str]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        specs = [f"{name}@{version}" for name, version in PINS.items()]
        out = subprocess.run(
            ["npm", "pack", "--json", *specs], cwd=tmp, check=True, capture_output=True, text=True
        ).stdout
        packed = {p["name"]: p for p in json.loads(out)}
        for name, version in PINS.items():
            info = packed[name]
            with tarfile.open(Path(tmp) / info["filename"]) as tar:
                build = tar.extractfile(f"package/{BUILDS[name]}")
                licence = tar.extractfile("package/LICENSE")
                assert build is not None and licence is not None
                code = build.read().decode("utf-8")
                if name == "vega-interpreter":
                    code = wrap_interpreter(code)
                target = DEST / (
                    name + ".min.js" if name != "vega-interpreter" else "vega-interpreter.js"
                )
                target.write_text(code, encoding="utf-8")
                (DEST / f"LICENSE-{name}.txt").write_bytes(licence.read())
            record[name] = {
                "version": version,
                "file": target.name,
                "sha256": hashlib.sha256(target.read_bytes()).hexdigest(),
                "npm_integrity": info["integrity"],
            }
    (DEST / "VENDORED.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(f"vendored {', '.join(f'{n} {v}' for n, v in PINS.items())} into {DEST}")


if __name__ == "__main__":
    main()
