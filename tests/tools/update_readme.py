"""Regenerate the README's generated blocks: the rule graph (from `snakemake --rulegraph`) and the
config reference (from config/schema.yaml). `make readme` runs it; tests/unit/test_readme.py fails
when the README is out of date.

    python tests/tools/update_readme.py [--check]
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"


def rulegraph_mermaid() -> str:
    snakemake = Path(sys.executable).parent / "snakemake"
    out = subprocess.run(
        [str(snakemake), "--rulegraph", "mermaid-js", "all", "--quiet", "all"],
        cwd=ROOT, check=True, capture_output=True, text=True, stdin=subprocess.DEVNULL,
    ).stdout
    start = out.index("flowchart")
    graph = out[start:].strip()
    # colours differ between Snakemake versions; keep only the structure
    lines = [line for line in graph.splitlines()[1:] if not line.strip().startswith(("classDef", "class ", "linkStyle"))]
    # Snakemake emits edges in no fixed order: sort so the README only changes when the graph does
    graph = "\n".join([graph.splitlines()[0], *sorted(line for line in lines if "-->" not in line),
                       *sorted(line for line in lines if "-->" in line)])
    return f"```mermaid\n---\ntitle: Rule graph (snakemake --rulegraph mermaid-js)\n---\n{graph}\n```"


def _walk(schema: dict, prefix: str = ""):
    for key, sub in schema.get("properties", {}).items():
        path = f"{prefix}{key}"
        if sub.get("type") == "object" and "properties" in sub:
            yield from _walk(sub, f"{path}.")
        elif sub.get("type") == "array" and sub.get("items", {}).get("type") == "object":
            yield path, sub
            yield from _walk(sub["items"], f"{path}[].")
        else:
            yield path, sub


def config_reference() -> str:
    schema = yaml.safe_load((ROOT / "config/schema.yaml").read_text())
    rows = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for path, sub in _walk(schema):
        typ = sub.get("type", "")
        typ = " or ".join(typ) if isinstance(typ, list) else typ
        if "enum" in sub:
            typ += " (" + ", ".join(map(str, sub["enum"])) + ")"
        default = sub.get("default", "" if "default" not in sub else None)
        default = "" if default == "" else f"`{yaml.safe_dump(default, default_flow_style=True).strip().removesuffix('...').strip()}`"
        desc = " ".join(str(sub.get("description", "")).split())
        rows.append(f"| `{path}` | {typ} | {default} | {desc} |")
    return "\n".join(rows)


def census_treatment() -> str:
    sys.path.insert(0, str(ROOT / "scripts"))
    from alpha.ads.census import TREATMENT_MD

    return TREATMENT_MD.strip()


BLOCKS = {"rulegraph": rulegraph_mermaid, "config-reference": config_reference, "census-treatment": census_treatment}


def render(text: str) -> str:
    for name, fn in BLOCKS.items():
        pattern = re.compile(rf"(<!-- BEGIN {name} -->\n)(?:.*?\n)?(<!-- END {name} -->)", re.S)
        if not pattern.search(text):
            raise SystemExit(f"README.md has no <!-- BEGIN {name} --> ... <!-- END {name} --> block")
        text = pattern.sub(lambda m: m.group(1) + fn() + "\n" + m.group(2), text)
    return text


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", action="store_true", help="exit 1 if README.md is out of date")
    args = ap.parse_args()
    current = README.read_text()
    updated = render(current)
    if args.check:
        if updated != current:
            raise SystemExit("README.md is out of date: run `make readme`")
        return
    README.write_text(updated)


if __name__ == "__main__":
    main()
