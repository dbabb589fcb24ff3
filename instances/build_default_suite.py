"""Build the bundled ``default`` suite in ``instances/data/default/`` bit-identically.

Usage::

    python -m instances.build_default_suite            # (re)write the files and MANIFEST.json
    python -m instances.build_default_suite --check    # verify the committed files match

Every instance is generated from a seed derived from its name (:func:`pipecert.derive_seed`),
written as native JSON gzipped with ``mtime=0`` and no file name in the header, so the
bytes only depend on the generator code. The manifest schema is documented in
``instances/data/README.md``.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from instances.formats.native import dumps
from instances.generators import layered_dag, regal_like
from pipecert.instance import Instance
from pipecert.seeding import derive_seed

__all__ = ["SUITE", "SPECS", "Spec", "build", "check", "regime_of", "manifest_entry"]

SUITE = "default"
BASE_SEED = 2026
DATA_DIR = Path(__file__).resolve().parent / "data" / SUITE


def regime_of(ratio: float) -> str:
    """``compute-heavy`` (comm/work < 0.5), ``comm-heavy`` (> 2) or ``balanced``."""
    if ratio < 0.5:
        return "compute-heavy"
    if ratio > 2.0:
        return "comm-heavy"
    return "balanced"


@dataclass(frozen=True)
class Spec:
    """One bundled instance: a name, a generator and its parameters."""

    name: str
    generator: str
    params: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    @property
    def seed(self) -> int:
        return derive_seed(BASE_SEED, SUITE, self.name)

    def make(self) -> Instance:
        generators: dict[str, Callable[..., Instance]] = {"layered_dag": layered_dag,
                                                          "regal_like": regal_like}
        gen = generators[self.generator]
        return gen(rng=self.seed, name=f"{SUITE}/{self.name}", **self.params)


def _specs() -> list[Spec]:
    s: list[Spec] = [
        Spec("tiny-chain-8", "layered_dag",
             dict(n=8, width=1, skip_prob=0.3, comm_work_ratio=0.5, digits=3),
             "chain with skips, small enough for brute force"),
        Spec("tiny-compute-10", "layered_dag",
             dict(n=10, width=3, comm_work_ratio=0.1, digits=3), "brute-force size"),
        Spec("tiny-comm-10", "layered_dag",
             dict(n=10, width=3, comm_work_ratio=3.0, digits=3), "brute-force size"),
    ]
    for i in range(1, 9):
        s.append(Spec(f"regal-{i:02d}", "regal_like", {},
                      "REGAL-like: 50-300 nodes, integer costs on [1, 100] "
                      "(docs/theory/paper.md#implementation-notes)"))
    for n in (30, 100, 300, 1000, 3000):
        s.append(Spec(f"compute-{n:04d}", "layered_dag",
                      dict(n=n, width=4, skip_prob=0.1, comm_work_ratio=0.05),
                      "layer-graph-like, compute-dominated (comm 5% of work)"))
    for n in (30, 100, 300, 1000, 3000):
        s.append(Spec(f"comm-{n:04d}", "layered_dag",
                      dict(n=n, width=6, skip_prob=0.15, comm_work_ratio=3.0),
                      "communication-dominated (comm 3x work)"))
    for n in (50, 500):
        s.append(Spec(f"balanced-{n:04d}", "layered_dag",
                      dict(n=n, width=4, skip_prob=0.1, comm_work_ratio=1.0),
                      "comm equal to work"))
    for n, r in ((100, 6.0), (300, 8.0), (1000, 10.0), (2000, 13.0), (3000, 8.0)):
        s.append(Spec(f"operator-{n:04d}", "layered_dag",
                      dict(n=n, width=3, skip_prob=0.1, comm_work_ratio=r,
                           weight_fraction=0.4, work_sigma=1.5),
                      f"operator-graph-like: 40% zero-work weight nodes, comm {r:g}x work"))
    s.append(Spec("wide-compute-0500", "layered_dag",
                  dict(n=500, width=25, skip_prob=0.05, max_in=3, comm_work_ratio=0.2),
                  "wide layers (about 25 nodes), compute-dominated"))
    s.append(Spec("chain-comm-0200", "layered_dag",
                  dict(n=200, width=1.5, skip_prob=0.3, comm_work_ratio=2.5),
                  "nearly a chain with many skip edges, comm-dominated"))
    s.append(Spec("chain-compute-1000", "layered_dag",
                  dict(n=1000, width=1.2, skip_prob=0.2, comm_work_ratio=0.1),
                  "nearly a chain, compute-dominated"))
    return s


SPECS: list[Spec] = _specs()


def _gzip_bytes(data: bytes) -> bytes:
    import io

    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as gz:
        gz.write(data)
    return buf.getvalue()


def manifest_entry(spec: Spec, inst: Instance, raw: bytes) -> dict[str, Any]:
    """The MANIFEST.json entry of one generated instance."""
    ratio = inst.comm_work_ratio
    return {
        "id": f"{SUITE}/{spec.name}",
        "file": f"{spec.name}.json.gz",
        "n_nodes": inst.n_nodes,
        "n_edges": inst.n_edges,
        "n_precedence_edges": inst.n_precedence_edges,
        "total_work": inst.total_work,
        "total_comm": inst.total_comm,
        "comm_work_ratio": ratio,
        "regime": regime_of(ratio),
        "units": inst.units,
        "generator": spec.generator,
        "params": dict(spec.params),
        "seed": spec.seed,
        "description": spec.description,
        "sha256": hashlib.sha256(raw).hexdigest(),
    }


def build(out_dir: Path = DATA_DIR) -> list[dict[str, Any]]:
    """Generate every instance of :data:`SPECS` into ``out_dir`` and write the manifest."""
    out_dir.mkdir(parents=True, exist_ok=True)
    entries = []
    topologies: dict[str, str] = {}
    for spec in SPECS:
        inst = spec.make()
        h = inst.structure_fingerprint  # generated ids are v0, v1, ...: the topology alone
        if h in topologies:
            raise RuntimeError(f"{spec.name} has the same topology as {topologies[h]}")
        topologies[h] = spec.name
        raw = dumps(inst).encode("utf-8")
        (out_dir / f"{spec.name}.json.gz").write_bytes(_gzip_bytes(raw))
        entries.append(manifest_entry(spec, inst, raw))
    manifest = {
        "schema": 1,
        "suite": SUITE,
        "description": "Generated instances of both regimes, 8 to 3000 nodes "
                       "(python -m instances.build_default_suite)",
        "instances": entries,
    }
    (out_dir / "MANIFEST.json").write_text(json.dumps(manifest, indent=1) + "\n",
                                           encoding="utf-8")
    return entries


def check(data_dir: Path = DATA_DIR) -> list[str]:
    """Rebuild into a temporary folder and list every file that differs from ``data_dir``."""
    with tempfile.TemporaryDirectory() as tmp:
        build(Path(tmp))
        fresh = sorted(p.name for p in Path(tmp).iterdir())
        problems = []
        for name in fresh:
            old = data_dir / name
            if not old.is_file():
                problems.append(f"{name}: missing")
            elif old.read_bytes() != (Path(tmp) / name).read_bytes():
                problems.append(f"{name}: differs")
        extra = sorted(p.name for p in data_dir.iterdir() if p.name not in fresh
                       and p.name != "README.md")
        problems += [f"{x}: not produced by the build" for x in extra]
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="verify instead of writing")
    parser.add_argument("--out", type=Path, default=DATA_DIR, help="output folder")
    args = parser.parse_args(argv)
    if args.check:
        problems = check(args.out)
        for p in problems:
            print(p, file=sys.stderr)
        print("ok" if not problems else f"{len(problems)} file(s) differ")
        return 1 if problems else 0
    entries = build(args.out)
    size = sum((args.out / e["file"]).stat().st_size for e in entries)
    print(f"wrote {len(entries)} instances ({size / 1e6:.2f} MB) to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
