"""Turn the ingested logs into a report a person would rather look at than read.

    python -m host.report [--db tinymask.duckdb] [--device ID] [--since BOOT] --out DIR
                          [--labelled DATASET_DIR] [--bundle models/tinymask]

DIR gets report.html (self-contained: plots and thumbnails inline), report.json (every figure as
numbers) and the plots as PNG files. With --labelled (a tools.dataset folder a person has sorted),
the report adds the camera's on-device accuracy; when frames were captured, it re-runs them through
the host int8 model and lists every frame where board and host decide differently.
"""

from __future__ import annotations

import argparse
import datetime
import decimal
import io
import json
import math
import sys
import time
from pathlib import Path

from tqdm import tqdm

from host.errors import UserError, output_folder, run_cli
from host.field import db
from host.field.report import captures, data, html, plots
from host.field.report import eval as evaluation
from tools.payload import DEFAULT_BUNDLE

THUMBNAIL = 96


def build_report(db_path: Path, out_dir: Path, device: str | None = None, since_boot: int | None = None,
                 labelled: Path | None = None, bundle_dir: Path | None = DEFAULT_BUNDLE,
                 least_confident: int = 24, max_captures: int = 5000, host_check: bool = True,
                 echo=print) -> dict:
    started = time.perf_counter()
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--out {out_dir}: is a file, not a folder; give a folder for report.html and "
                        f"report.json (created if needed), for example --out {out_dir.with_suffix('')}-report/")
    bundle = _bundle_or_none(bundle_dir)
    con = db.connect(db_path, create=False, read_only=True)
    try:
        data.select_records(con, device, since_boot)
        echo("report: aggregating in the database ...")
        configs = data.configs(con)
        report = {
            "generated_at": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "database": str(db_path), "filters": {"device": device, "since_boot": since_boot},
            "threshold": bundle.threshold if bundle else 0.5,
            "summary": data.summary(con),
            "configs": configs,
            "per_hour": data.per_hour(con),
            "over_time": data.series(con),
            "distributions": data.distributions(con),
            "score_histograms": data.score_histograms(con),
            "doors": data.doors(con),
            "gaps": data.gaps(con),
        }
        report["clock"] = data.clock_summary(report["gaps"]["boots"])
        report["labels"] = label_order(data.labels(con), configs, bundle)
        report["door_threshold"] = door_threshold(configs, bundle)
        _order_by_labels(report)
        report["least_confident"] = data.least_confident(con, report["threshold"], least_confident)
        report["least_confident_captured"] = data.least_confident(
            con, report["threshold"], max(3 * least_confident, least_confident + 50), captured=True)
        if labelled is not None:
            echo(f"report: comparing the camera's decisions with the labels in {labelled} ...")
            report["on_device"] = evaluation.on_device_accuracy(con, Path(labelled), _positive(bundle, report),
                                                                report["labels"])
        captured = data.captured_frames(con, max_captures) if report["summary"]["captured_frames"] else []
    finally:
        con.close()
    tally = captures.CaptureTally()
    report["board_vs_host"] = _board_vs_host(captured, bundle, bundle_dir, host_check, report, echo, tally)
    for frame in report["least_confident"]:
        frame["thumbnail"] = _thumbnail(frame, tally)
    shown = []
    for frame in report["least_confident_captured"]:
        if len(shown) < least_confident:
            frame["thumbnail"] = _thumbnail(frame, tally)
            if frame["thumbnail"] is not None:
                shown.append(frame)
    report["least_confident_captured"] = shown
    for frame in (report["board_vs_host"] or {}).get("differing", [])[:60]:
        frame["thumbnail"] = _thumbnail(frame, tally)
    report["captures"] = tally.summary()
    report["warnings"] = _warnings(report, bundle, bundle_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--out {out_dir}: cannot create the folder ({exc.strerror or exc}); choose another") from None
    pictures = _plots(report)
    for name, png in pictures.items():
        (out_dir / f"{name}.png").write_bytes(png)
    (out_dir / "report.html").write_text(render(report, pictures), encoding="utf-8")
    report["seconds"] = round(time.perf_counter() - started, 3)
    (out_dir / "report.json").write_text(strict_json(_jsonable(report)) + "\n")
    return report


def strict_json(value) -> str:
    """report.json as strict JSON: NaN and infinities (a frame_ms of 0 gives 1000/0) become null."""
    return json.dumps(_finite(value), indent=1, allow_nan=False, default=_json_default)


def _finite(value):
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, decimal.Decimal):
        value = float(value)
    elif hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def label_order(logged: list[str], configs: list[dict], bundle) -> list[str]:
    """One label order everywhere: the model's output order (the camera's config.json, else the bundle's
    card), then any other logged label (e.g. the presence gate's none_label) in name order."""
    order: list[str] = []
    for config in configs:
        try:
            labels = json.loads(config["labels"]) if config.get("labels") else []
        except ValueError:
            labels = []
        order += [str(x) for x in labels if str(x) not in order]
    if not order and bundle is not None:
        order = list(bundle.labels)
    present = set(logged)
    return [x for x in order if x in present] + sorted(present - set(order))


def _order_by_labels(report: dict) -> None:
    rank = {label: i for i, label in enumerate(report["labels"])}
    key = lambda label: (rank.get(label, len(rank)), str(label))  # noqa: E731
    report["summary"]["labels"].sort(key=lambda row: key(row["label"]))
    report["score_histograms"] = {k: report["score_histograms"][k] for k in sorted(report["score_histograms"], key=key)}


def door_threshold(configs: list[dict], bundle) -> dict:
    """The door's threshold: from the camera's archived config.json (one per camera), else the bundle
    card's calibrated door_threshold, else the firmware default; with where it came from."""
    from tools.payload import tmconfig

    per_device = {}
    for config in configs:
        if config.get("threshold") is not None and math.isfinite(config["threshold"]):
            per_device.setdefault(config.get("device_id") or "?", float(config["threshold"]))
    if per_device:
        values = sorted(set(per_device.values()))
        return {"value": values[0] if len(values) == 1 else None, "values": values, "per_device": per_device,
                "source": "the camera's config.json (archived by tools.pull)"}
    if bundle is not None and bundle.door_threshold is not None:
        return {"value": bundle.door_threshold, "values": [bundle.door_threshold], "per_device": {},
                "source": f"the bundle's model card ({bundle.path}); no camera config.json was ingested"}
    value = float(tmconfig().defaults()["threshold"])
    return {"value": value, "values": [value], "per_device": {},
            "source": "the firmware's default; no camera config.json was ingested (pull with tools.pull)"}


def _warnings(report: dict, bundle, bundle_dir) -> list[str]:
    out = [c["problem"] for c in report["configs"] if c.get("problem")]
    if bundle is not None and bundle.sha256:
        other = [m for m in report["summary"]["models"] if m.get("model_sha256") and m["model_sha256"] != bundle.sha256]
        if other:
            boots = ", ".join(f"{m['device_id']} b{m['boot']}" for m in other[:5]) + (" ..." if len(other) > 5 else "")
            out.append(f"{len(other)} boot(s) ran another model than the bundle compared ({bundle_dir}, sha256 "
                       f"{bundle.sha256[:12]}): {boots} logged {other[0]['model_sha256'][:12]}; scores and the "
                       f"board-vs-host check do not describe that bundle (pass --bundle with the deployed one)")
    captured = report.get("captures") or {}
    if captured.get("refused"):
        out.append(f"{captured['refused']} capture path(s) named by the logs lead outside the card and were not read")
    return out


def _bundle_or_none(bundle_dir: Path | None) -> evaluation.Bundle | None:
    if bundle_dir is None:
        return None
    try:
        return evaluation.load_bundle(bundle_dir)
    except UserError:
        return None  # without a bundle: threshold 0.5, and no board-vs-host check (the report says so)


def _positive(bundle, report) -> str:
    if bundle is not None:
        return bundle.positive
    return "with_mask" if "with_mask" in report["labels"] else (report["labels"] or ["with_mask"])[-1]


def _board_vs_host(captured, bundle, bundle_dir, host_check, report, echo, tally) -> dict | None:
    if not captured:
        return None
    if not host_check:
        return {"skipped": "--no-host-check"}
    if bundle is None:
        return {"skipped": f"no model bundle at {bundle_dir} (pass --bundle)"}
    echo(f"report: re-running {len(captured)} captured frames through the host int8 model ...")
    with tqdm(total=len(captured), unit="frame", desc="board vs host", file=sys.stderr, disable=None) as bar:
        result = evaluation.board_vs_host(captured, bundle, progress=bar.update, tally=tally)
    if len(captured) >= report["summary"]["captured_frames"]:
        result["limited_to"] = None
    else:
        result["limited_to"] = len(captured)
    return result


def _thumbnail(frame: dict, tally: captures.CaptureTally) -> bytes | None:
    image = captures.load(frame, tally)
    if image is None:
        return None
    image.thumbnail((THUMBNAIL, THUMBNAIL))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def _plots(report: dict) -> dict[str, bytes]:
    pictures = {
        "per_hour": plots.per_hour(report["per_hour"], report["labels"], report["gaps"]["boots"]),
        "over_time": plots.over_time(report["over_time"]),
        "distributions": plots.distributions(report["distributions"]),
        "scores": plots.score_histograms(report["score_histograms"], report["threshold"],
                                         report["door_threshold"]["values"]),
        "coverage": plots.coverage(report["gaps"]["boots"], report["gaps"]["silent"]),
    }
    if report["doors"]["reasons"]:
        pictures["doors"] = plots.door_reasons(report["doors"]["reasons"])
    if report.get("on_device") and report["on_device"]["matched"]:
        pictures["confusion"] = plots.confusion(report["on_device"], "on-device decisions vs labels")
    return pictures


def render(report: dict, pictures: dict[str, bytes]) -> str:
    s = report["summary"]
    subtitle = (f"{s['devices']} camera(s), {s['boots']} boot(s), boots {s['first_boot']}-{s['last_boot']}; "
                f"generated {report['generated_at']} from {report['database']}")
    sections = [("Overview", _overview(report)),
                ("Frames and decisions per hour", html.img(pictures["per_hour"], "frames per hour")),
                ("FPS and inference time", _performance(report, pictures)),
                ("Door", _doors(report, pictures)),
                ("Scores", html.img(pictures["scores"], "score histograms")
                 + f"<p>Dashed: the door threshold ({html.esc(report['door_threshold']['source'])}); "
                   f"dotted: the label cut-off {report['threshold']:g}.</p>"),
                ("Least-confident frames", _least_confident(report)),
                ("Data gaps", _gaps(report, pictures))]
    if report.get("on_device"):
        sections.append(("On-device accuracy", _on_device(report, pictures)))
    if report.get("board_vs_host"):
        sections.append(("Board vs host", _agreement(report)))
    return html.page("tinymask camera report", subtitle, sections)


def _overview(report: dict) -> str:
    s = report["summary"]
    c = report.get("captures") or {}
    out = "".join(f'<p class="warn">warning: {html.esc(w)}</p>' for w in report.get("warnings", []))
    out += html.cards([("frames", s["frames"]), ("hours logged", s["hours_logged"]), ("cameras", s["devices"]),
                       ("boots", s["boots"]), ("door openings", s["door_openings"]),
                       ("captured frames", s["captured_frames"]),
                       ("captures unreadable", c.get("unreadable", 0) + c.get("refused", 0)),
                       ("lines skipped", s["skipped"]), ("door threshold", report["door_threshold"]["value"])])
    out += (f"<p>Door threshold {', '.join(f'{v:g}' for v in report['door_threshold']['values'])} from "
            f"{html.esc(report['door_threshold']['source'])}; label cut-off {report['threshold']:g}.</p>")
    out += _clock_line(report)
    out += "<h3>Frames per decision</h3>" + html.table(s["labels"], [("label", "predicted"), ("frames", "frames")])
    out += "<h3>Cameras</h3>" + html.table(s["devices_list"], [
        ("device_id", "camera"), ("boots", "boots"), ("first_boot", "first boot"), ("last_boot", "last boot"),
        ("frames", "frames")])
    out += "<h3>Model and firmware per boot</h3>" + html.table(s["models"][:50], [
        ("device_id", "camera"), ("boot", "boot"), ("model_sha256", "model sha256"),
        ("firmware_version", "tinymask"), ("omv_firmware", "OpenMV"), ("board", "board")])
    return out


def _clock_line(report: dict) -> str:
    """Which boots have wall-clock times; the others are shown in uptime, and the report says so."""
    c = report.get("clock") or {}
    if not c.get("boots_without_clock"):
        return ("<p>Boot starts are shown in UTC, from the camera's clock (set by tools.deploy); other times "
                "are since each boot.</p>") if c.get("boots_with_clock") else ""
    total = c["boots_with_clock"] + c["boots_without_clock"]
    which = "every boot" if not c["boots_with_clock"] else f"{c['boots_without_clock']} of {total} boots"
    return (f'<p class="note">{html.esc(c["note"])} ({which}; tools.deploy sets it from the host\'s UTC '
            f"clock). Boots whose log carried the clock show their start in UTC under Data gaps.</p>")


def _performance(report: dict, pictures: dict) -> str:
    stats = report["distributions"]["stats"]
    return (html.cards([("mean FPS", stats["fps_mean"]), ("median FPS", stats["fps_median"]),
                        ("mean inference ms", stats["infer_ms_mean"]), ("p95 inference ms", stats["infer_ms_p95"]),
                        ("max inference ms", stats["infer_ms_max"])])
            + html.img(pictures["over_time"], "FPS and inference over time")
            + html.img(pictures["distributions"], "FPS and inference distributions"))


def _doors(report: dict, pictures: dict) -> str:
    d = report["doors"]
    mean_open = d["mean_open_ms"] / 1000 if d["mean_open_ms"] is not None else None
    out = html.cards([("openings", d["openings"]), ("closings", d["closings"]), ("mean open s", mean_open)])
    if "doors" in pictures:
        out += html.img(pictures["doors"], "door triggers")
    recent = [{**o, "uptime_s": o["uptime_ms"] / 1000, "open_s": None if o["open_ms"] is None else o["open_ms"] / 1000}
              for o in d["recent"][:25]]
    out += "<h3>Latest openings</h3>" + html.table(recent, [
        ("device_id", "camera"), ("boot", "boot"), ("seq", "seq"), ("uptime_s", "s since boot"),
        ("reason", "reason"), ("trigger_label", "frame decided"), ("trigger_score", "frame score"),
        ("open_s", "open for s"), ("closed_by", "closed by")], empty="no door openings")
    return out


def _least_confident(report: dict) -> str:
    frames = report["least_confident"]
    shown = report["least_confident_captured"]
    out = (f"<p>The {len(shown)} captured frames whose score came closest to the label cut-off "
           f"{report['threshold']:g} (door threshold {_door_values(report)}):</p>")
    out += html.thumbs(shown, lambda f: (
        f"{html.esc(f['device_id'])} b{f['boot']} s{f['seq']}<br>{html.esc(f['label'])} {f['score']:.4f}"))
    rows = [{**f, "captured": ("yes" if f.get("thumbnail") else f.get("capture_status") or "unreadable")
             if f.get("image") else "no"} for f in frames]
    out += f"<h3>The {len(frames)} least-confident frames of all</h3>" + html.table(rows, [
        ("device_id", "camera"), ("boot", "boot"), ("seq", "seq"), ("label", "decided"), ("score", "score"),
        ("margin", "distance to cut-off"), ("captured", "captured")])
    return out


def _door_values(report: dict) -> str:
    return ", ".join(f"{v:g}" for v in report["door_threshold"]["values"])


def _gaps(report: dict, pictures: dict) -> str:
    g = report["gaps"]
    boots = [{**b, "hours": (b["end_ms"] - b["start_ms"]) / 3.6e6,
              "started": b.get("started_utc") or "clock not set"} for b in g["boots"][:100]]
    out = html.img(pictures["coverage"], "data coverage")
    out += "<h3>Boots</h3>" + _clock_line(report) + html.table(boots, [
        ("device_id", "camera"), ("boot", "boot"), ("boot_id", "boot id"), ("started", "started (UTC)"),
        ("parts", "files"), ("records", "records"),
        ("hours", "hours"), ("missing_records", "records lost"), ("faults", "fault events"),
        ("boot_detail", "boot event")])
    out += ("<h3>Card changes (a boot number used by more than one run: the card was wiped or replaced)</h3>"
            + html.table(report["summary"].get("runs_per_boot_number", []), [
                ("device_id", "camera"), ("boot", "boot"), ("runs", "runs")], empty="none"))
    missing = [{"device_id": m["device_id"], "count": m["count"], "boots": ", ".join(map(str, m["boots"][:20]))}
               for m in g["missing_boots"]]
    out += "<h3>Boot numbers never seen (card missing, log off, or logs not pulled)</h3>" + html.table(
        missing, [("device_id", "camera"), ("count", "boots"), ("boots", "numbers")], empty="none: every boot is here")
    silent = [{**x, "from_s": x["from_ms"] / 1000} for x in g["silent"][:20]]
    out += f"<h3>Silent stretches inside a boot (no record for {g['gap_bucket_s']:g} s or more)</h3>" + html.table(
        silent, [("device_id", "camera"), ("boot", "boot"), ("from_s", "from s since boot"),
                 ("seconds", "seconds")], empty="none")
    out += "<h3>Faults logged</h3>" + html.table(g["fault_counts"], [("event", "event"), ("count", "count")],
                                                 empty="no fault events")
    out += html.table(g["faults"][:20], [("device_id", "camera"), ("boot", "boot"), ("seq", "seq"),
                                         ("event", "event"), ("detail", "detail")], empty="")
    c = report.get("captures") or {}
    out += "<h3>Captures not shown (unreadable, refused or missing)</h3>" + html.table(c.get("examples", []), [
        ("device_id", "camera"), ("boot", "boot"), ("seq", "seq"), ("image", "image"), ("status", "status"),
        ("reason", "reason")], empty="every capture named by the logs was readable")
    out += "<h3>Lines skipped while ingesting</h3>" + html.table(g["skipped_by_file"][:50], [
        ("path", "file"), ("count", "skipped"), ("first_offset", "first at byte"), ("example", "example reason")],
        empty="nothing skipped")
    return out


def _on_device(report: dict, pictures: dict) -> str:
    m = report["on_device"]
    positive = m["positive"] or {}
    out = html.cards([("accuracy", None if m["accuracy"] is None else 100 * m["accuracy"]),
                      (f"precision ({m['positive_label']})", _pct(positive.get("precision"))),
                      (f"recall ({m['positive_label']})", _pct(positive.get("recall"))),
                      (f"F1 ({m['positive_label']})", _pct(positive.get("f1"))),
                      ("frames compared", m["matched"]), ("images without a log line", m["unmatched"])])
    if "confusion" in pictures:
        out += html.img(pictures["confusion"], "confusion matrix")
    per_class = [{"label": k, **{x: _pct(v[x]) for x in ("precision", "recall", "f1")}, "support": v["support"]}
                 for k, v in m["per_class"].items()]
    out += html.table(per_class, [("label", "class"), ("precision", "precision %"), ("recall", "recall %"),
                                  ("f1", "F1 %"), ("support", "frames")])
    return out


def _pct(value):
    return None if value is None else 100 * value


def _agreement(report: dict) -> str:
    a = report["board_vs_host"]
    if "skipped" in a:
        return f'<p class="none">not compared: {html.esc(a["skipped"])}</p>'
    out = html.cards([("agreement %", _pct(a["agreement"])), ("frames compared", a["compared"]),
                      ("differ", len(a["differing"])), ("mean |score diff|", a["score_abs_diff_mean"]),
                      ("images missing", a["missing_images"]), ("images unreadable", a.get("unreadable_images", 0))])
    out += ("<p>Captured JPEGs are lossy, so the host sees slightly different pixels than the board did; "
            "frames near the threshold may flip.</p>")
    out += html.table(a["differing"], [("device_id", "camera"), ("boot", "boot"), ("seq", "seq"),
                                       ("label", "board"), ("score", "board score"), ("host_label", "host"),
                                       ("host_score", "host score"), ("image", "image")],
                      empty="board and host agree on every captured frame")
    out += html.thumbs(a["differing"][:60], lambda f: (
        f"b{f['boot']} s{f['seq']}<br>board {f['score']:.3f} / host {f['host_score']:.3f}"))
    return out


def _jsonable(report: dict) -> dict:
    """report.json: the numbers, without the inline pictures."""
    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k != "thumbnail"}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value
    return strip(report)


def _json_default(value):
    if isinstance(value, decimal.Decimal):
        return float(value)
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    return str(value)


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m host.report", description=__doc__.split("\n\n")[0])
    p.add_argument("--db", type=Path, default=db.DEFAULT_DB, help=f"database from host.ingest (default {db.DEFAULT_DB})")
    p.add_argument("--device", help="only this camera (default: all)")
    p.add_argument("--since", type=_boot_number, metavar="BOOT",
                   help="only boots numbered BOOT and later (the camera has no clock; boots are its timeline)")
    p.add_argument("--out", type=Path, required=True, help="folder for report.html, report.json and the PNGs")
    p.add_argument("--labelled", type=Path, metavar="DIR",
                   help="captured frames sorted into label folders (tools.dataset): adds on-device accuracy")
    p.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE,
                   help="model bundle for the threshold and the board-vs-host check (default models/tinymask)")
    p.add_argument("--least-confident", type=int, default=24, metavar="N", help="frames to show (default 24)")
    p.add_argument("--max-captures", type=int, default=5000, metavar="N",
                   help="captured frames to re-run through the host model at most (default 5000)")
    p.add_argument("--no-host-check", action="store_true", help="skip re-running captures on the host")
    return p.parse_args(argv)


def _boot_number(text: str) -> int:
    value = text.strip().lower().removeprefix("boot").removeprefix(":").removeprefix("=").removeprefix("b")
    if not value.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a boot number (e.g. 12 or b12)")
    return int(value)


def main(argv=None) -> int:
    args = parse_args(argv)
    for flag, value in (("--least-confident", args.least_confident), ("--max-captures", args.max_captures)):
        if value < 0:
            raise UserError(f"{flag} {value}: a number of frames, 0 or more")
    output_folder(args.out)  # before the aggregation and the captures' re-run, not after them
    if args.bundle != DEFAULT_BUNDLE and not (args.bundle / "model_card.json").is_file():
        raise UserError(f"--bundle {args.bundle}: no model_card.json there; pass a folder written by host.build")
    if args.bundle != DEFAULT_BUNDLE:
        evaluation.load_bundle(args.bundle)  # a bundle named on the command line must be sound (one line if not)
    report = build_report(args.db, args.out, args.device, args.since, args.labelled, args.bundle,
                          args.least_confident, args.max_captures, not args.no_host_check)
    s = report["summary"]
    for warning in report["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    unreadable = report["captures"]["unreadable"] + report["captures"]["refused"]
    if unreadable:
        print(f"note: {unreadable} capture(s) unreadable or refused; listed under Data gaps in the report",
              file=sys.stderr)
    print(f"report: {args.out / 'report.html'} ({s['frames']:,} frames, {s['devices']} camera(s), "
          f"{s['boots']} boot(s), {s['door_openings']} door openings) in {report['seconds']:.1f} s")
    if report.get("on_device"):
        m = report["on_device"]
        print(f"on-device accuracy: {100 * m['accuracy']:.1f}% over {m['matched']} labelled frames"
              if m["accuracy"] is not None else "on-device accuracy: no labelled frame matched a log line")
    agreement = report.get("board_vs_host") or {}
    if agreement.get("compared"):
        print(f"board vs host: {100 * agreement['agreement']:.1f}% agree over {agreement['compared']} captured "
              f"frames, {len(agreement['differing'])} differ (listed in the report)")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
