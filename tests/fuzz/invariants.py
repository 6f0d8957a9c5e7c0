"""Run the ingestion on a fuzz corpus as the workflow does (one ``ingest_dump`` per file, then
``merge_dumps``, outputs under ``results/``) and check what must hold whatever the input:

- no crash: a file either ingests or raises IngestError with a whole-file message (and only when
  the file is damaged as a whole or holds no well-formed record);
- the accounting: per dump, ``in`` is the number of records the file holds (where the generator can
  tell: no stream cut short, no quote left open), in == parsed_kept + quarantined and the Parquet row
  counts agree with the report; after the merge, in == kept + quarantined + duplicates per file and
  per output table, and ad ids are unique;
- every quarantined row has a reason, a known one, and the counts by reason match the report;
- kept rows are clean (an id, a page, a body of min_words, a start date, regions, shares in [0, 1]);
- every well-formed record the generator wrote is kept (JSON layouts, CSV rows whose numbering is
  certain);
- the access_token value appears nowhere under results/ (Parquet values, JSON reports, the log);
- JSON Lines: the per-record path (the reference) and the vectorised path agree exactly.
"""
from __future__ import annotations

import json
import logging
import math
import traceback
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from alpha.ads import cleaning as ads
from alpha.ads import ingest
from alpha.ads.cleaning import CleaningOptions
from alpha.core import io
from fuzz.ad_records import SECRET, Corpus, Written, write_corpus

OPTIONS = CleaningOptions()
READER_REASONS = ("malformed_row", "bad_encoding")  # CSV rows the reader itself could not use
ALLOWED_REASONS = frozenset(ads.REASONS) | frozenset(READER_REASONS)
WHOLE_FILE_ERRORS = ("no records in the file", "records could be parsed", "not valid JSON", "expected an API page",
                     "empty CSV", "Ad Library Report download", "no ad id column", "side table needs", "re-encode the file",
                     "layout wide, but")


@dataclass
class Finding:
    kind: str  # crash | accounting | reason | unclean_row | lost_record | leak | paths_differ | ingest_error
    file: str
    detail: str

    def __str__(self) -> str:
        return f"[{self.kind}] {self.file}: {self.detail}"


def _ingest(spec: ingest.DumpSpec, out: Path, vectorised: bool):
    """('ok', report, kept rows, quarantine rows) | ('error', message) | ('crash', traceback)."""
    a, q = out / f"{spec.name}.parquet", out / f"{spec.name}.quarantine.parquet"
    try:
        report = ingest.ingest_dump(spec, a, q, OPTIONS, batch_rows=5, vectorised=vectorised, min_kept_share=0.0)
    except ingest.IngestError as err:
        return ("error", str(err))
    except Exception:  # noqa: BLE001 - any other exception is the finding
        return ("crash", traceback.format_exc(limit=-6))
    try:
        return ("ok", report, pq.read_table(a).to_pylist(), pq.read_table(q).to_pylist(), a, q)
    except Exception:  # noqa: BLE001 - an output that cannot be read back (e.g. strings that are not UTF-8)
        return ("crash", "output not readable: " + traceback.format_exc(limit=-3))


def _compare_paths(name: str, ref, fast) -> list[Finding]:
    if ref[0] == "crash":
        return [] if fast[0] == "crash" else [Finding("crash", f"{name} (per-record path)", ref[1])]
    if ref[0] != fast[0] or (ref[0] != "ok" and ref[1] != fast[1]):
        return [Finding("paths_differ", name, f"per-record {ref[0]}: {str(ref[1])[:300]} | vectorised {fast[0]}: {str(fast[1])[:300]}")]
    if ref[0] != "ok":
        return []
    out = []
    ref_q = sorted((r["source_record"], r["ad_id"] or "", r["reason"]) for r in ref[3])
    fast_q = sorted((r["source_record"], r["ad_id"] or "", r["reason"]) for r in fast[3])
    if ref_q != fast_q:
        diff = sorted(set(ref_q) ^ set(fast_q))[:3]
        out.append(Finding("paths_differ", name, f"quarantine differs: per-record-only/vectorised-only {diff}"))
    if len(ref[2]) != len(fast[2]):
        out.append(Finding("paths_differ", name, f"kept {len(ref[2])} per-record vs {len(fast[2])} vectorised"))
    else:
        for r, f in zip(ref[2], fast[2]):
            if r != f:
                cols = {k: (r[k], f[k]) for k in r if r[k] != f[k]}
                out.append(Finding("paths_differ", name, f"record {r['source_record']}: (per-record, vectorised) {cols}"[:600]))
                break
    if ref[1] != fast[1]:
        cols = {k: (ref[1].get(k), fast[1].get(k)) for k in set(ref[1]) | set(fast[1]) if ref[1].get(k) != fast[1].get(k)}
        out.append(Finding("paths_differ", name, f"reports differ: {cols}"[:600]))
    return out


def _check_rows(name: str, report: dict, kept: list, quarantined: list, written: Written) -> list[Finding]:
    out = []
    if written.n_in is not None and report["in"] != written.n_in:
        out.append(Finding("accounting", name, f"read {report['in']} records, the file holds {written.n_in}"))
    if report["in"] != report["parsed_kept"] + report["quarantined"]:
        out.append(Finding("accounting", name, f"in {report['in']} != kept {report['parsed_kept']} + quarantined {report['quarantined']}"))
    if len(kept) != report["parsed_kept"] or len(quarantined) != report["quarantined"]:
        out.append(Finding("accounting", name,
                           f"Parquet rows {len(kept)}/{len(quarantined)} vs report {report['parsed_kept']}/{report['quarantined']}"))
    reasons = Counter(q["reason"] for q in quarantined)
    if dict(reasons) != report["quarantined_by_reason"]:
        out.append(Finding("reason", name, f"quarantine rows by reason {dict(reasons)} vs report {report['quarantined_by_reason']}"))
    for q in quarantined:
        if not q["reason"] or q["reason"] not in ALLOWED_REASONS:
            out.append(Finding("reason", name, f"record {q['source_record']}: reason {q['reason']!r}"))
            break
    for row in kept:
        problem = None
        if not row["ad_id"] or not row["page_id"]:
            problem = "no ad or page id"
        elif not row["body"] or len(row["body"].split()) - row["body"].count("[URL]") < OPTIONS.min_words:
            problem = f"body {row['body']!r}"
        elif row["delivery_start"] is None:
            problem = "no start date"
        elif not row["region_name"] or len(row["region_name"]) != len(row["region_share"]):
            problem = "regions"
        elif len({len(row["demo_age"]), len(row["demo_gender"]), len(row["demo_share"])}) != 1:
            problem = "demographics not aligned"
        elif not all(math.isfinite(s) and 0.0 <= s <= 1.0 + 1e-6 for s in row["region_share"] + row["demo_share"]):
            problem = f"shares {row['region_share']} {row['demo_share']}"
        elif OPTIONS.drop_unnamed_pages and not row["page_name"]:
            problem = "unnamed page"
        if problem:
            out.append(Finding("unclean_row", name, f"record {row['source_record']}: {problem}"[:400]))
            break
    if written.clean_indices:
        kept_at = {r["source_record"] for r in kept}
        lost = [i for i in written.clean_indices if i not in kept_at]
        if lost:
            why = {q["source_record"]: (q["reason"], q["detail"][:120]) for q in quarantined if q["source_record"] in lost}
            out.append(Finding("lost_record", name, f"well-formed records {lost[:5]} not kept: {why}"[:600]))
    return out


def _scan_for_secret(results: Path) -> list[Finding]:
    """Every value of every Parquet column, and every other file's bytes, under results/."""
    out = []
    for path in sorted(p for p in results.rglob("*") if p.is_file()):
        where: dict[str, str] = {}
        try:
            table = pq.read_table(path) if path.suffix == ".parquet" else None
            columns = {name: json.dumps(table.column(name).to_pylist(), default=str, ensure_ascii=False)
                       for name in table.column_names} if table is not None else None
        except Exception:  # noqa: BLE001 - what a crashed run left (Snakemake deletes it): the crash is reported
            columns = None
        if columns is not None:
            where = {name: text for name, text in columns.items() if SECRET in text}
        else:
            text = path.read_bytes().decode("utf-8", "replace")
            if SECRET in text:
                where["bytes"] = text
        for column, text in where.items():
            at = text.find(SECRET)
            out.append(Finding("leak", str(path.relative_to(results)), f"column {column}: ...{text[max(0, at - 120):at + 30]!r}"))
    return out


def check_corpus(corpus: Corpus, workdir: Path) -> tuple[list[Finding], dict]:
    """Write the corpus, ingest every file (JSON Lines both ways), merge, and check every invariant.
    Returns the findings and counts (records written, read, kept, quarantined, duplicates, file errors)."""
    results = workdir / "results"
    written = write_corpus(corpus, workdir / "inputs")
    findings: list[Finding] = []
    stats: Counter = Counter(records=corpus.n_records(), files=len(written))
    (results / "logs").mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(results / "logs" / "ingest.log", encoding="utf-8")
    logger = logging.getLogger("alpha")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    parts = []
    try:
        for w in written:
            name = w.spec.name
            fast = _ingest(w.spec, results / "ads", vectorised=True)
            if w.case.layout in ("jsonl", "jsonl_legacy"):
                ref = _ingest(w.spec, workdir / "reference", vectorised=False)
                findings += _compare_paths(name, ref, fast)
            if fast[0] == "crash":
                findings.append(Finding("crash", name, fast[1]))
                continue
            if fast[0] == "error":
                stats["file_errors"] += 1
                stats[f"file_errors.{w.case.layout}"] += 1
                if not any(m in fast[1] for m in WHOLE_FILE_ERRORS):
                    findings.append(Finding("ingest_error", name, f"unexpected IngestError: {fast[1][:400]}"))
                elif w.clean_indices and not w.whole_file_damage:
                    findings.append(Finding("ingest_error", name, f"whole file refused although it holds well-formed records "
                                                                  f"{w.clean_indices[:5]}: {fast[1][:300]}"))
                continue
            _, report, kept, quarantined, a, q = fast
            findings += _check_rows(name, report, kept, quarantined, w)
            io.write_json(results / "ads" / f"{name}.report.json", report)
            parts.append((a, q, report))
            stats["read"] += report["in"]
        if parts:
            try:
                merged = ingest.merge_dumps(parts, results / "ads.parquet", results / "ads.quarantine.parquet",
                                            results / "ads.duplicates.parquet", batch_rows=7)
            except Exception:  # noqa: BLE001
                findings.append(Finding("crash", "merge", traceback.format_exc(limit=-6)))
            else:
                io.write_json(results / "ingest_report.json", merged)
                findings += _check_merge(merged, results)
                for key in ("kept", "quarantined", "duplicates"):
                    stats[key] += merged["totals"][key]
    finally:
        logger.removeHandler(handler)
        handler.close()
    findings += _scan_for_secret(results)
    return findings, dict(stats)


def _check_merge(merged: dict, results: Path) -> list[Finding]:
    out = []
    kept = pq.read_table(results / "ads.parquet", columns=["ad_id", "source_file"]).to_pylist()
    quarantined = pq.read_table(results / "ads.quarantine.parquet", columns=["source_file", "reason"]).to_pylist()
    dups = pq.read_table(results / "ads.duplicates.parquet", columns=["source_file"]).to_pylist()
    by_file = {key: Counter(r["source_file"] for r in rows)
               for key, rows in (("kept", kept), ("quarantined", quarantined), ("duplicates", dups))}
    for dump, entry in merged["files"].items():
        if entry["in"] != entry["kept"] + entry["quarantined"] + entry["duplicates"]:
            out.append(Finding("accounting", dump, f"in != kept + quarantined + duplicates: {entry}"))
        for key, counts in by_file.items():
            if counts.get(entry["file"], 0) != entry[key]:
                out.append(Finding("accounting", dump,
                                   f"{key}: {counts.get(entry['file'], 0)} rows in the merged output, report says {entry[key]}"))
    ids = Counter(r["ad_id"] for r in kept)
    if ids and max(ids.values()) > 1:
        out.append(Finding("accounting", "merge", f"ad ids kept twice: {[k for k, v in ids.items() if v > 1][:5]}"))
    if any(not r["reason"] or r["reason"] not in ALLOWED_REASONS for r in quarantined):
        out.append(Finding("reason", "merge", "a merged quarantine row without a known reason"))
    return out
