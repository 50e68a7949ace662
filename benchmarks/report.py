"""The Markdown report: header, Targets, Stages, one table per section, failed runs; the README block.

Rows are declared, in order, in :data:`STAGE_ROWS` (functions ``report -> [(stage, time, notes)]``)
and :data:`TABLES` (section name → ``(section, report) -> lines``). The library stages a row reads
are declared next to it (:data:`TRACK_STAGES`, :data:`FIND_STAGES`); the jobs fail when one of
them was not recorded, and ``tests/test_benchmarks.py`` checks that the library records them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.plan import NO_GPU
from benchmarks.summary import MEMORY_ARMS, PUBLISHED_A100_FPS, defaults_arms, first_ok, memory_runs

README = Path(__file__).resolve().parent / "README.md"
README_START = "<!-- benchmark-results:start -->"
README_END = "<!-- benchmark-results:end -->"

# Threads as tracker.timing files them: the job's own thread, and the session's prefetch thread.
TRACKING_THREAD = "MainThread"
PREFETCH_THREAD = "sam2-frames"
# (stage, thread or None = any) that the "render + encode" row reads from a memory track run.
TRACK_STAGES: tuple[tuple[str, str | None], ...] = (
    ("draw", None),
    ("encode", TRACKING_THREAD),
    ("decode", PREFETCH_THREAD),
    ("preprocess", PREFETCH_THREAD),
)
# ... and that the "automatic masks" and "crop scoring" rows read from each Find run.
FIND_STAGES: tuple[tuple[str, str | None], ...] = (
    ("heat map", None),
    ("proposals", None),
    ("crop scoring", None),
)


def _f(value: float | None, fmt: str = ".2f", unit: str = "") -> str:
    return "—" if value is None else f"{value:{fmt}}{unit}"


def stage_total(
    stages: dict[str, Any], name: str, thread: str | None = None, key: str = "seconds"
) -> float | None:
    """``key`` (seconds, calls, items) of stage ``name`` in a record's ``stages``; None when not recorded."""
    entry = stages.get(name)
    if entry is not None and thread is not None:
        entry = entry["threads"].get(thread)
    return None if entry is None else entry[key]


def stage_mean(stages: dict[str, Any], name: str) -> float | None:
    """Seconds per call of stage ``name``; None when not recorded."""
    seconds, calls = stage_total(stages, name), stage_total(stages, name, key="calls")
    return seconds / calls if seconds is not None and calls else None


# ------------------------------------------------------------------------------- header


def _environment_sentence(report: dict[str, Any]) -> str:
    values = {k: v for k, v in report.get("environment", {}).items() if v is not None}
    if not values:
        return "No OMP_* / MKL_* variables set (libgomp spin-waits by default)."
    return "Job environment: " + ", ".join(f"{k}={v}" for k, v in values.items()) + "."


def header(report: dict[str, Any]) -> list[str]:
    m = report["machine"]
    quick = (
        [
            "_`--quick`: short runs at small sizes; the verdicts are indicative only. Use the full run for figures._",
            "",
        ]
        if report["args"].get("quick")
        else []
    )
    return quick + [
        f"Machine: {m.get('cpu')}, {m.get('cores')} cores, {m.get('ram_gb')} GB RAM; torch {m.get('torch')} "
        f"({m.get('torch_threads')} threads), sam2 {m.get('sam2')}, CPU autocast {m.get('cpu_autocast')}; "
        f"GPU: {m.get('cuda') or 'none'}.  ",
        f"Date: {report['date']}. Load average (1/5/15 min) at start {report['load_average_start']}, "
        f"at end {report['load_average_end']}. Wall time {report['wall_s'] / 60:.1f} min.  ",
        f"Command: `{report['command']}`. Models use random weights (speed and memory do not depend on them). "
        + _environment_sentence(report),
        "",
    ]


def targets_table(report: dict[str, Any]) -> list[str]:
    lines = ["**Targets**", "", "| target | status | measured | goal |", "|---|---|---|---|"]
    lines += [
        f"| {t['target']} | **{t['status']}** | {t['value']} | {t['goal']} |" for t in report["targets"]
    ]
    return lines + [""]


# ------------------------------------------------------------------------------- stages table

StageRow = tuple[str, str, str]


def decode_rows(report: dict[str, Any]) -> list[StageRow]:
    decode = (first_ok(report.get("equal")) or {}).get("decode_pass")
    if not decode:
        return []
    return [
        (
            "decode (working size)",
            f"{decode['s_per_frame'] * 1000:.1f} ms/frame",
            f"{decode['size']}, one sequential pass of {decode['frames']} frames",
        )
    ]


def find_rows(report: dict[str, Any]) -> list[StageRow]:
    find = report.get("find")
    if not find or "error" in find:
        return []
    cold, warm = find["runs"]
    d = find["decode_ranked_frames"]
    clip = f"{Path(find['spec']['video']).name}, {find['width']}×{find['height']}"
    per = max(warm["mask_frames"], 1)
    heat, points = stage_mean(warm["stages"], "heat map"), stage_mean(warm["stages"], "proposals")
    detail = (
        f"CLIP heat map {heat:.2f} s + SAM 2 point prompts {points:.2f} s"
        if heat is not None and points is not None
        else ""
    )
    crops = stage_total(warm["stages"], "crop scoring", key="items")
    return [
        (
            "models load (first Find)",
            f"{cold['load_s']:.1f} s",
            f"CLIP + SAM 2 built (random weights) inside the call; warm {warm['load_s']:.2f} s",
        ),
        (
            "frame ranking (CLIP)",
            f"{warm['rank_s']:.1f} s",
            f"{d['frames']} frames (every {d['stride']}th) of {clip}; decoding them alone {d['s']:.1f} s",
        ),
        (
            "automatic masks (candidate proposal)",
            f"{warm['masks_s'] / per:.2f} s/frame",
            f"{warm['mask_frames']} frames; {detail}",
        ),
        ("crop scoring (CLIP)", f"{warm['scoring_s'] / per:.2f} s/frame", f"{_f(crops, 'd')} crops in all"),
        (
            "time to first candidates",
            f"{cold['first_candidates_s']:.1f} s",
            f"first Find (models built in the call); warm {warm['first_candidates_s']:.1f} s",
        ),
        ("Find total", f"{cold['total_s']:.1f} s", f"first Find; warm {warm['total_s']:.1f} s"),
    ]


def propagation_rows(report: dict[str, Any]) -> list[StageRow]:
    equal, eq = report.get("equal"), report["summary"].get("equal", {})
    if not equal or not eq.get("ours_s_per_frame"):
        return []
    return [
        (
            "propagation",
            f"{eq['ours_s_per_frame']:.3f} s/frame",
            f"{equal['model']} {equal['image_size']}, mean (median {eq['ours_median_s_per_frame']:.3f})",
        )
    ]


def render_rows(report: dict[str, Any]) -> list[StageRow]:
    """Drawing and encoding per frame, from the longest memory track run's stages (see TRACK_STAGES)."""
    run = max(memory_runs(report.get("memory"), "ours"), key=lambda r: r["num_frames"], default=None)
    if not run:
        return []
    stages, n = run["stages"], max(run["frames_done"], 1)

    def ms(*parts: tuple[str, str | None]) -> str:
        values = [stage_total(stages, name, thread) for name, thread in parts]
        return "—" if None in values else f"{sum(values) / n * 1000:.1f}"  # type: ignore[arg-type]

    draw, hand_off = ms(("draw", None)), ms(("encode", TRACKING_THREAD))
    on_thread = ms(("draw", None), ("encode", TRACKING_THREAD))
    prefetch = ms(("decode", PREFETCH_THREAD), ("preprocess", PREFETCH_THREAD))
    return [
        (
            "render + encode",
            f"{on_thread} ms/frame on the tracking thread",
            f"draw {draw} ms + hand-off to the writer thread {hand_off} ms; "
            f"ffmpeg (own process, overlapped) {run['children_cpu_s'] / n * 1000:.1f} ms CPU; "
            f"decode + resize on the prefetch thread (overlapped) {prefetch} ms "
            f"({run['num_frames']}-frame run at {run['spec']['image_size']})",
        )
    ]


def first_result_rows(report: dict[str, Any]) -> list[StageRow]:
    paired = first_ok(report.get("equal"))
    track = next((a for a in (paired or {}).get("arms", []) if a["name"] == "ours track"), None)
    if not track:
        return []
    first_propagated = track["first_frame_s"] + (track["steps"][1] if len(track["steps"]) > 1 else 0)
    return [
        (
            "time to first streamed result frame",
            f"{track['first_frame_s']:.2f} s",
            f"after pressing Track (the prompt frame; the session was built by the prompt, "
            f"{track['phases']['prompt_s']:.1f} s); first propagated frame {first_propagated:.2f} s",
        ),
        (
            "total (track + overlay)",
            f"{track['total_s']:.1f} s",
            f"{track['frames_done']} frames at {track['width']}×{track['height']} (interleaved run)",
        ),
    ]


# In table order.
STAGE_ROWS: tuple[Callable[[dict[str, Any]], list[StageRow]], ...] = (
    decode_rows,
    find_rows,
    propagation_rows,
    render_rows,
    first_result_rows,
)


def stages_table(report: dict[str, Any]) -> list[str]:
    rows = [row for make in STAGE_ROWS for row in make(report)]
    if not rows:
        return []
    lines = ["**Stages** (ours)", "", "| stage | time | notes |", "|---|---|---|"]
    return lines + [f"| {a} | {b} | {c} |" for a, b, c in rows] + [""]


# ------------------------------------------------------------------------------- section tables


def memory_table(memory: dict[str, Any], report: dict[str, Any]) -> list[str]:
    every = memory.get("discover_every")
    lines = [
        f"**Peak memory vs video length** ({memory['model']}, image size {memory['image_size']}, "
        "RSS sampled every 50 ms; each length in a fresh process)",
        "",
        "| frames | ours peak RSS | ours ru_maxrss | ours s/frame (track) "
        + ("| ours, discovery on: peak RSS | ours, discovery on: s/frame (checks) " if every else "")
        + "| plain peak RSS | plain ru_maxrss | plain s/frame |",
        "|---|---|---|---|" + ("---|---|" if every else "") + "---|---|---|",
    ]
    by_length: dict[int, dict[str, dict[str, Any]]] = defaultdict(dict)
    for who in MEMORY_ARMS:
        for r in memory_runs(memory, who):
            by_length[r["num_frames"]][who] = r
    for length in sorted(by_length):
        o, d, p = (by_length[length].get(who) for who in MEMORY_ARMS)
        looking = ""
        if every:
            checks = (d or {}).get("discovery", {}).get("checks")
            looking = (
                f"| {_f(d and d['peak_rss_mb'], '.0f', ' MB')} "
                f"| {_f(d and d['per_frame']['mean'], '.3f')}{f' ({checks})' if checks is not None else ''} "
            )
        lines.append(
            f"| {length} | {_f(o and o['peak_rss_mb'], '.0f', ' MB')} | {_f(o and o['ru_maxrss_mb'], '.0f', ' MB')} "
            f"| {_f(o and o['per_frame']['mean'], '.3f')} {looking}| {_f(p and p['peak_rss_mb'], '.0f', ' MB')} "
            f"| {_f(p and p['ru_maxrss_mb'], '.0f', ' MB')} | {_f(p and p['per_frame']['mean'], '.3f')} |"
        )
    rows = report["summary"]["memory"]
    within = {
        who: ", ".join(f"{v:+.1f}" for v in rows[who]["within_run_mb_per_100"] if v is not None) or "—"
        for who in MEMORY_ARMS
    }
    growth = "**{}**".format(_f(rows["discovery"]["growth_mb_per_100"], "+.1f", " MB")) + " | "
    lines += [
        f"| **growth / 100 frames** (fit) | **{_f(rows['ours']['growth_mb_per_100'], '+.1f', ' MB')}** "
        f"| {_f(rows['ours']['growth_ru_maxrss_mb_per_100'], '+.1f', ' MB')} | "
        + (f"| {growth}" if every else "")
        + f"| **{_f(rows['plain']['growth_mb_per_100'], '+.1f', ' MB')}** "
        f"| {_f(rows['plain']['growth_ru_maxrss_mb_per_100'], '+.1f', ' MB')} | |",
        "",
        "Within each run (RSS after each frame, second half of the run, MB per 100 frames): "
        f"ours {within['ours']}; "
        + (f"ours with discovery on {within['discovery']}; " if every else "")
        + f"plain {within['plain']}.",
        "",
    ]
    if every:
        lines += [
            f"Discovery on: a check every {every} frames through the real detector (SAM 2 point "
            "proposals from the tracker's own backbone features, CLIP crop scores, CLIP loaded), "
            "threshold and re-acquisition set to +inf, so every check runs and nothing is added: "
            "one object all along (random weights would make a finite threshold -inf and confirm "
            "noise, growing the object count, which is not the question here).",
            "",
        ]
    return lines


EQUAL_ROWS = (
    ("plain", "plain SAM 2 `propagate_in_video` (frames preloaded by `init_state`)", "plain_total_s"),
    (
        "ours",
        "ours `TrackingSession.propagate` (frames decoded and resized lazily, prefetched)",
        "propagate_total_s",
    ),
    ("track", "ours `Workspace.track` (+ draw + H.264 overlay mp4)", "track_total_s"),
)


def equal_table(equal: dict[str, Any], report: dict[str, Any]) -> list[str]:
    eq = report["summary"].get("equal")
    if not eq:
        return []
    arms = {a["name"]: a for r in equal["runs"] if "error" not in r for a in r["arms"]}
    lines = [
        f"**Equal settings** ({equal['model']}, image size {equal['image_size']}, {equal['frames']} frames; same "
        f"model object, frames, box prompt and autocast ({next(iter(arms.values()))['autocast']}); the arms run "
        f"in one process, one frame each in turn, so they share the machine's load; {eq['repeats']} run(s), "
        f"cores busy on average {eq['cpu_share']} of {report['machine'].get('cores')})",
        "",
        "| | s/frame (mean) | s/frame (median) | total incl. prompt frame and close | vs plain |",
        "|---|---|---|---|---|",
    ]
    for key, label, total in EQUAL_ROWS:
        if f"{key}_s_per_frame" not in eq:
            continue
        versus = (eq[f"{key}_s_per_frame"] / eq["plain_s_per_frame"]) if eq.get("plain_s_per_frame") else None
        lines.append(
            f"| {label} | {eq[f'{key}_s_per_frame']:.3f} | {eq[f'{key}_median_s_per_frame']:.3f} "
            f"| {_f(eq[total], '.1f', ' s')} | {_f(versus, '.3f', '×')} |"
        )
    return lines + [""]


def defaults_table(defaults: dict[str, Any], report: dict[str, Any]) -> list[str]:
    d = report["summary"].get("defaults")
    if not d:
        return []
    ours, plain = defaults_arms(defaults)
    lines = [
        f"**CPU default preset vs plain SAM 2 at its defaults**, end to end from the mp4 on "
        f"{defaults['frames']} frames (interleaved in one process; model build excluded on both sides)",
        "",
        "| | settings | extract frames | open / init_state + prompt | first result shown | tracking | s/frame "
        "| end to end |",
        "|---|---|---|---|---|---|---|---|",
    ]
    if ours:
        st, ph = ours["settings"] or {}, ours["phases"]
        lines.append(
            f"| ours | {st.get('preset')}: {st.get('sam2_model')} {st.get('image_size')}, {ours['width']}×"
            f"{ours['height']}, {ours['autocast']}, + overlay mp4 | (none: decoded lazily) "
            f"| {ph['open_s'] + ph['prompt_s']:.1f} s | {ph['open_s'] + ph['prompt_s'] + ours['first_frame_s']:.1f} s "
            f"| {ours['total_s']:.1f} s | {_f(ours['s_per_frame_mean'], '.3f')} | {d['ours_e2e_s']:.1f} s |"
        )
    if plain:
        ph, prep = plain["phases"], defaults["prep"]["seconds"]
        model = first_ok(defaults)["spec"]["arms"][1]["model"]  # type: ignore[index]
        lines.append(
            f"| plain SAM 2 | {model} 1024, {plain['width']}×{plain['height']} JPEGs, "
            f"{plain['autocast']} | {prep:.1f} s (decode + JPEG) | {ph['init_state_s'] + ph['prompt_s']:.1f} s "
            f"| {prep + ph['init_state_s'] + ph['prompt_s'] + plain['first_frame_s']:.1f} s "
            f"| {plain['total_s']:.1f} s | {_f(plain['s_per_frame_mean'], '.3f')} | {d['plain_e2e_s']:.1f} s |"
        )
    if "speedup_measured" in d:
        lines.append(
            f"| **speed-up** | | | | | | {d['speedup_per_frame']:.1f}× | **{d['speedup_measured']:.1f}×** measured; "
            f"**{d['speedup_extrapolated']:.1f}×** extrapolated to the {defaults['clip_frames']}-frame clip "
            f"(ours {d['ours_e2e_full_s']:.0f} s vs plain {d['plain_e2e_full_s']:.0f} s: measured + per-frame "
            "rate × remaining frames) |"
        )
    return lines + [""]


def gpu_table(gpu: dict[str, Any], report: dict[str, Any]) -> list[str]:
    compiled = "compiled" if gpu["compiled"] else "not compiled"
    lines = [
        f"**GPU, image size 1024, bfloat16, {compiled}** (frames per second of propagation)",
        "",
        "| model | SAM 2 published (A100, uncompiled / compiled) | plain SAM 2 here | ours here | GPU peak ours / plain |",
        "|---|---|---|---|---|",
    ]
    for row in report["summary"].get("gpu", []):
        published = PUBLISHED_A100_FPS[row["model"]]
        if gpu.get("not_run"):
            lines.append(
                f"| {row['model']} | {published[0]:.0f} / {published[1]:.0f} | {NO_GPU} | {NO_GPU} | — |"
            )
        else:
            lines.append(
                f"| {row['model']} | {published[0]:.0f} / {published[1]:.0f} | {_f(row['plain_fps'], '.1f')} "
                f"| {_f(row['ours_fps'], '.1f')} | {_f(row['ours_gpu_peak_mb'], '.0f')} / "
                f"{_f(row['plain_gpu_peak_mb'], '.0f')} MB |"
            )
    return lines + [""]


def discovery_table(section: dict[str, Any], report: dict[str, Any]) -> list[str]:
    d = report["summary"].get("discovery")
    if not d:
        return []
    lines = [
        f"**Discovery** (finding new objects while tracking, {section['preset']} preset, {d['frames']} frames "
        f'of the Find clip; the arms run in one process, one frame each in turn; the "on" arms '
        f"check every {d['every']} frames and never add an object, so this is the price of looking; "
        f"{d['reused_features']} of {d['checks']} checks reused the tracker's backbone features; "
        f"cores busy on average {d['cpu_share']} of {report['machine'].get('cores')})",
        "",
        "| | tracking, whole run | s/frame | checks | s/check (of which proposals + CLIP) "
        "| grid points decoded / skipped per check | crops scored / skipped per check | overhead |",
        "|---|---|---|---|---|---|---|---|",
        f"| discovery off | {d['off_s']:.1f} s | {d['off_s_per_frame']:.3f} | – | – | – | – | – |",
    ]
    arms = [(f"discovery on, every {d['every']} frames", d["on_s"], d["skipping"])]
    if d.get("baseline"):
        arms.append(("discovery on, nothing skipped (as before)", d["baseline_s"], d["baseline"]))
    for label, seconds, work in arms:
        lines.append(
            f"| {label} | {seconds:.1f} s | {seconds / max(d['frames'] - 1, 1):.3f} | {work['checks']} "
            f"| {_f(work['s_per_check'])} ({_f(work['detect_s_per_check'])}) "
            f"| {_f(work['points_per_check'], '.1f')} / {_f(work['skipped_points_per_check'], '.1f')} "
            f"| {_f(work['crops_per_check'], '.1f')} / {_f(work['skipped_crops_per_check'], '.1f')} "
            f"| {seconds / d['off_s'] - 1:+.1%} |"
        )
    lines += [
        "",
        f"At this speed a check every {d['every_for_25']} frames or more stays within 25 % of tracking time.",
        "",
    ]
    return lines + _detect_lines(d.get("detect"))


def _detect_lines(detect: dict[str, Any] | None) -> list[str]:
    if not detect:
        return []
    lines = [
        f"**The detector alone** on {detect['checks']} check frames (the tracker's features reused), "
        "called twice a frame in alternating order: nothing skipped, and given a solid tracked mask "
        f"(an ellipse in the prompt box, {detect['covered_fraction']:.0%} of the frame: what real "
        "weights would track there; random-weight masks are noise that covers nothing solidly)",
        "",
        "| | s per check | grid points decoded / skipped | crops scored / skipped |",
        "|---|---|---|---|",
    ]
    for name, row in detect["variants"].items():
        lines.append(
            f"| {name} | {_f(row['s_per_detect'], '.3f')} | {row['points_per_check']:.1f} / "
            f"{row['skipped_points_per_check']:.1f} | {row['crops_per_check']:.1f} / "
            f"{row['skipped_crops_per_check']:.1f} |"
        )
    return lines + [""]


# Section tables, in table order (Find has rows in the Stages table only).
TABLES: dict[str, Callable[[dict[str, Any], dict[str, Any]], list[str]]] = {
    "memory": memory_table,
    "equal": equal_table,
    "defaults": defaults_table,
    "gpu": gpu_table,
    "discovery": discovery_table,
}


def failures(report: dict[str, Any]) -> list[str]:
    failed = [r for key in TABLES for r in (report.get(key) or {}).get("runs", []) if "error" in r]
    detect = (report.get("discovery") or {}).get("detect")
    if detect and "error" in detect:
        failed.append(detect)
    if report.get("find") and "error" in report["find"]:
        failed.append(report["find"])
    if not failed:
        return []
    return ["**Failed runs**", ""] + [f"- {r['label']}: {r['error']}" for r in failed] + [""]


def render_table(report: dict[str, Any]) -> str:
    """The Markdown report: machine, targets, stages, one table per section, failed runs."""
    lines = header(report) + targets_table(report) + stages_table(report)
    for name, table in TABLES.items():
        if report.get(name) is not None:
            lines += table(report[name], report)
    return "\n".join(lines + failures(report))


def write_readme(table: str, path: Path = README) -> None:
    """Replace the block between the README's result markers with ``table``."""
    text = path.read_text() if path.exists() else f"# Benchmarks\n\n{README_START}\n{README_END}\n"
    if README_START not in text or README_END not in text:
        text = text.rstrip() + f"\n\n## Latest results\n\n{README_START}\n{README_END}\n"
    head, rest = text.split(README_START, 1)
    _, tail = rest.split(README_END, 1)
    path.write_text(f"{head}{README_START}\n{table}\n{README_END}{tail}")
