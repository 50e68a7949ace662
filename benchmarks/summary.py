"""Derived numbers and the PASS / FAIL / NOT RUN verdict of each target, per section.

Each section that has targets has one summariser in :data:`SUMMARIES`:
``summarise_<name>(section, report) -> (summary or None, [target rows])``. A target row is
:func:`target`'s dict; :func:`summarise` runs the summarisers in section order.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from benchmarks.measure import MB, growth_per_100
from benchmarks.plan import GPU_MODELS, NO_GPU, SECTION_NAMES

# Targets of issue #4.
MEMORY_GROWTH_LIMIT_MB = 50.0  # per 100 extra frames, at any processing size
PROPAGATION_TOLERANCE = 0.05  # ours s/frame ≤ (1 + this) × plain, equal settings
E2E_OVER_PROPAGATION = 1.2  # decode + propagate + draw + encode ≤ this × propagation alone
DEFAULTS_SPEEDUP = 5.0  # CPU default preset vs plain SAM 2 at its defaults, end to end
DISCOVERY_OVERHEAD = (
    0.25  # discovery at its default interval adds at most this share of tracking time (issue #11)
)
FIRST_CANDIDATES_S = 15.0
ALL_CANDIDATES_S = 45.0
# SAM 2's published A100 figures (frames per second at 1024, bfloat16): (uncompiled, compiled).
PUBLISHED_A100_FPS = {"tiny": (47.0, 91.0), "base+": (35.0, 64.0), "large": (24.0, 40.0)}

Targets = list[dict[str, Any]]


def target(name: str, passed: bool | None, value: str, goal: str) -> dict[str, Any]:
    """One row of the Targets table; ``passed`` None = NOT RUN."""
    status = "NOT RUN" if passed is None else "PASS" if passed else "FAIL"
    return {"target": name, "status": status, "value": value, "goal": goal}


def runs_of(section: dict[str, Any] | None, kind: str, mode: str | None = None) -> list[dict[str, Any]]:
    """The section's successful runs of job ``kind`` (and ``mode``)."""
    if not section:
        return []
    return [
        r
        for r in section.get("runs", [])
        if "error" not in r and r["spec"]["kind"] == kind and (mode is None or r["spec"].get("mode") == mode)
    ]


def first_ok(section: dict[str, Any] | None) -> dict[str, Any] | None:
    """The section's first run that did not fail."""
    return next(iter(r for r in (section or {}).get("runs", []) if "error" not in r), None)


MEMORY_ARMS = ("ours", "discovery", "plain")  # "discovery": ours with discovery on


def memory_runs(memory: dict[str, Any] | None, who: str) -> list[dict[str, Any]]:
    """The memory section's successful runs of ``who`` (one of :data:`MEMORY_ARMS`)."""
    if who == "plain":
        return runs_of(memory, "plain")
    looking = who == "discovery"
    return [r for r in runs_of(memory, "ours") if bool(r["spec"].get("discover_every")) == looking]


def summarise_memory(memory: dict[str, Any], report: dict[str, Any]) -> tuple[dict[str, Any], Targets]:
    rows = {}
    for who in MEMORY_ARMS:
        runs = memory_runs(memory, who)
        rows[who] = {
            "points": [
                (r["num_frames"], round(r["peak_rss_mb"], 1), round(r["ru_maxrss_mb"], 1)) for r in runs
            ],
            "growth_mb_per_100": growth_per_100((r["num_frames"], r["peak_rss_mb"] * MB) for r in runs),
            "growth_ru_maxrss_mb_per_100": growth_per_100(
                (r["num_frames"], r["ru_maxrss_mb"] * MB) for r in runs
            ),
            "within_run_mb_per_100": [r.get("within_run_growth_mb_per_100") for r in runs],
        }
    growth = rows["ours"]["growth_mb_per_100"]
    plain_growth = rows["plain"]["growth_mb_per_100"]
    value = (
        "n/a (needs 2 lengths)"
        if growth is None
        else f"ours {growth:+.1f} MB"
        + (f", plain {plain_growth:+.1f} MB" if plain_growth is not None else "")
    )
    targets = [
        target(
            f"memory growth per 100 frames (image size {memory['image_size']})",
            None if growth is None else growth < MEMORY_GROWTH_LIMIT_MB,
            value,
            f"< {MEMORY_GROWTH_LIMIT_MB:.0f} MB",
        )
    ]
    if memory.get("discover_every"):
        looking = rows["discovery"]["growth_mb_per_100"]
        targets.append(
            target(
                f"memory growth per 100 frames, discovery on every {memory['discover_every']} frames",
                None if looking is None else looking < MEMORY_GROWTH_LIMIT_MB,
                "n/a (needs 2 lengths)"
                if looking is None
                else f"{looking:+.1f} MB"
                + (f" (discovery off {growth:+.1f} MB)" if growth is not None else ""),
                f"< {MEMORY_GROWTH_LIMIT_MB:.0f} MB",
            )
        )
    return rows, targets


def paired_summary(section: dict[str, Any]) -> dict[str, Any]:
    """Pooled over the interleaved repeats: s/frame of each arm and the ratios the targets use."""
    runs = [r for r in section.get("runs", []) if "error" not in r]
    if not runs:
        return {}
    pooled: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"propagated": 0.0, "frames": 0, "total": 0.0, "steps": []}
    )
    for run in runs:
        for arm in run["arms"]:
            p = pooled[arm["name"]]
            p["propagated"] += arm["propagated_s"]
            p["frames"] += max(arm["frames_done"] - 1, 0)
            p["total"] += arm["total_s"]
            p["steps"].append(arm["steps"][1:])
    out: dict[str, Any] = {"repeats": len(runs), "cpu_share": [round(r["cpu_share"], 2) for r in runs]}
    for name, key in {"plain": "plain", "ours propagate": "ours", "ours track": "track"}.items():
        if name in pooled and pooled[name]["frames"]:
            p = pooled[name]
            out[f"{key}_s_per_frame"] = p["propagated"] / p["frames"]
            out[f"{key}_median_s_per_frame"] = statistics.median(v for steps in p["steps"] for v in steps)
    out["propagate_total_s"] = pooled["ours propagate"]["total"] if "ours propagate" in pooled else None
    out["track_total_s"] = pooled["ours track"]["total"] if "ours track" in pooled else None
    out["plain_total_s"] = pooled["plain"]["total"] if "plain" in pooled else None
    if "plain" in pooled and "ours propagate" in pooled:
        out["ratio_propagation"] = out["ours_s_per_frame"] / out["plain_s_per_frame"]
        ratios = [
            o / p
            for ours_steps, plain_steps in zip(
                pooled["ours propagate"]["steps"], pooled["plain"]["steps"], strict=True
            )
            for o, p in zip(ours_steps, plain_steps, strict=False)
            if p > 0
        ]
        out["ratio_median_per_frame"] = statistics.median(ratios) if ratios else None
    if out["track_total_s"] and out["propagate_total_s"]:
        out["e2e_over_propagation"] = out["track_total_s"] / out["propagate_total_s"]
    if out["track_total_s"] and out["plain_total_s"]:
        out["e2e_over_plain_propagation"] = out["track_total_s"] / out["plain_total_s"]
    return out


def summarise_equal(equal: dict[str, Any], report: dict[str, Any]) -> tuple[dict[str, Any], Targets]:
    eq = paired_summary(equal)
    ratio = eq.get("ratio_propagation")
    e2e = eq.get("e2e_over_propagation")
    propagation = (
        "n/a"
        if ratio is None
        else f"ours {eq['ours_s_per_frame']:.3f} vs plain {eq['plain_s_per_frame']:.3f} "
        f"s/frame ({ratio:.3f}×; median of per-frame ratios {eq['ratio_median_per_frame']:.3f}×)"
    )
    end_to_end = (
        "n/a"
        if e2e is None
        else f"{eq['track_total_s']:.1f} s vs {eq['propagate_total_s']:.1f} s ({e2e:.3f}×)"
        + (
            f"; vs plain's propagation {eq['e2e_over_plain_propagation']:.3f}×"
            if eq.get("e2e_over_plain_propagation")
            else ""
        )
    )
    return eq, [
        target(
            f"propagation s/frame vs plain, equal settings ({equal['model']} {equal['image_size']})",
            None if ratio is None else ratio <= 1 + PROPAGATION_TOLERANCE,
            propagation,
            f"≤ {1 + PROPAGATION_TOLERANCE:.2f}×",
        ),
        target(
            "end to end (track + overlay) vs propagation alone",
            None if e2e is None else e2e <= E2E_OVER_PROPAGATION,
            end_to_end,
            f"≤ {E2E_OVER_PROPAGATION:.1f}×",
        ),
    ]


def defaults_arms(defaults: dict[str, Any]) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The (ours, plain) arms of the defaults run; None for an arm that did not run."""
    run = first_ok(defaults)
    arms = {a["name"]: a for a in run["arms"]} if run else {}
    return arms.get("ours default preset"), arms.get("plain SAM 2 defaults")


def summarise_defaults(defaults: dict[str, Any], report: dict[str, Any]) -> tuple[dict[str, Any], Targets]:
    ours, plain = defaults_arms(defaults)
    row: dict[str, Any] = {}
    if ours:
        row["ours_e2e_s"] = ours["phases"]["open_s"] + ours["phases"]["prompt_s"] + ours["total_s"]
        row["ours_per_frame_s"] = ours["s_per_frame_mean"]
    if plain:
        prep, phases = defaults["prep"], plain["phases"]
        row["plain_prep_s"] = prep["seconds"]
        row["plain_e2e_s"] = prep["seconds"] + phases["init_state_s"] + phases["prompt_s"] + plain["total_s"]
        # per extra frame: extract + load it (both scale with frames) and propagate it
        load_share = phases["init_state_s"] / max(plain["frames_done"], 1)
        row["plain_per_frame_s"] = plain["s_per_frame_mean"] + prep["s_per_frame"] + load_share
    if ours and plain:
        n, full = defaults["frames"], defaults["clip_frames"]
        row["speedup_measured"] = row["plain_e2e_s"] / row["ours_e2e_s"]
        row["ours_e2e_full_s"] = row["ours_e2e_s"] + (full - n) * row["ours_per_frame_s"]
        row["plain_e2e_full_s"] = row["plain_e2e_s"] + (full - n) * row["plain_per_frame_s"]
        row["speedup_extrapolated"] = row["plain_e2e_full_s"] / row["ours_e2e_full_s"]
        row["speedup_per_frame"] = plain["s_per_frame_mean"] / ours["s_per_frame_mean"]
    speedup = row.get("speedup_extrapolated")
    value = (
        "n/a"
        if speedup is None
        else f"{row['speedup_measured']:.1f}× measured on {defaults['frames']} frames; "
        f"{speedup:.1f}× extrapolated to the whole {defaults['clip_frames']}-frame clip"
    )
    return row, [
        target(
            f"CPU default preset ({defaults['preset']}) vs plain SAM 2 at its defaults, end to end",
            None if speedup is None else min(speedup, row["speedup_measured"]) >= DEFAULTS_SPEEDUP,
            value,
            f"≥ {DEFAULTS_SPEEDUP:.0f}×",
        )
    ]


def summarise_find(find: dict[str, Any], report: dict[str, Any]) -> tuple[dict[str, Any] | None, Targets]:
    if "error" in find:
        goal = f"≤ {FIRST_CANDIDATES_S:.0f} s / {ALL_CANDIDATES_S:.0f} s"
        return None, [target("Find timing", False, find["error"], goal)]
    cold, warm = find["runs"][0], find["runs"][1]
    summary = {
        "cold": {k: v for k, v in cold.items() if k.endswith("_s")},
        "warm": {k: v for k, v in warm.items() if k.endswith("_s")},
    }
    first, total = cold["first_candidates_s"], cold["total_s"]
    clip = f"{find['duration_s']:.1f} s {find['source']} clip"
    return summary, [
        target(
            f"first candidates after pressing Find ({clip}, cold)",
            None if first is None else first <= FIRST_CANDIDATES_S,
            "none" if first is None else f"{first:.1f} s (warm {warm['first_candidates_s']:.1f} s)",
            f"≤ {FIRST_CANDIDATES_S:.0f} s",
        ),
        target(
            f"all candidates ({clip}, cold)",
            None if total is None else total <= ALL_CANDIDATES_S,
            "n/a" if total is None else f"{total:.1f} s (warm {warm['total_s']:.1f} s)",
            f"≤ {ALL_CANDIDATES_S:.0f} s",
        ),
    ]


def _fps(run: dict[str, Any] | None) -> float | None:
    return 1 / run["per_frame"]["median"] if run and run["per_frame"]["median"] else None


def summarise_gpu(gpu: dict[str, Any], report: dict[str, Any]) -> tuple[list[dict[str, Any]], Targets]:
    rows = []
    for model in GPU_MODELS:
        ours = next((r for r in runs_of(gpu, "ours") if r["spec"]["model"] == model), None)
        plain = next((r for r in runs_of(gpu, "plain") if r["spec"]["model"] == model), None)
        rows.append(
            {
                "model": model,
                "published_a100_fps": PUBLISHED_A100_FPS[model][1 if gpu["compiled"] else 0],
                "ours_fps": _fps(ours),
                "plain_fps": _fps(plain),
                "ours_gpu_peak_mb": ours.get("gpu_max_allocated_mb") if ours else None,
                "plain_gpu_peak_mb": plain.get("gpu_max_allocated_mb") if plain else None,
            }
        )
    targets = []
    if gpu.get("not_run"):
        name = "GPU fps at 1024 (bf16" + (", compiled" if gpu["compiled"] else "") + ")"
        targets.append(target(name, None, NO_GPU, "next to SAM 2's A100 figures"))
    return rows, targets


def summarise_discovery(
    section: dict[str, Any], report: dict[str, Any]
) -> tuple[dict[str, Any] | None, Targets]:
    """Discovery off vs on: overhead on the whole run, seconds per check, the interval that fits 25 %."""
    name = f"discovery overhead, a check every {section.get('every')} frames"
    goal = f"≤ {DISCOVERY_OVERHEAD:.0%} of tracking time"
    run = first_ok(section)
    arms = {arm["name"]: arm for arm in (run or {}).get("arms", [])}
    off, on = arms.get("discovery off"), arms.get("discovery on")
    if off is None or on is None or not on.get("discovery", {}).get("checks"):
        return None, [target(name, None, "not run", goal)]
    looked = on["discovery"]
    off_frames = max(off["frames_done"] - 1, 1)
    per_frame = off["propagated_s"] / off_frames
    per_check = statistics.mean(looked["seconds"])
    overhead = on["propagated_s"] / off["propagated_s"] - 1.0
    baseline = arms.get("discovery on, nothing skipped")
    detect = section.get("detect")
    out = {
        "detect": None if not detect or "error" in detect else _detect_rows(detect),
        "skipping": _check_work(looked),
        "baseline": _check_work(baseline["discovery"]) if baseline and baseline.get("discovery") else None,
        "baseline_s": baseline["propagated_s"] if baseline else None,
        "frames": off["frames_done"],
        "every": section["every"],
        "checks": looked["checks"],
        "reused_features": looked.get("reused_features"),
        "off_s": off["propagated_s"],
        "on_s": on["propagated_s"],
        "off_s_per_frame": per_frame,
        "s_per_check": per_check,
        "detect_s_per_check": statistics.mean(looked["detect_seconds"]),
        "overhead": overhead,
        # the smallest interval whose checks cost at most 25 % of tracking at this speed
        "every_for_25": max(1, int(-(-per_check // (DISCOVERY_OVERHEAD * per_frame)))),
        "cpu_share": round(run["cpu_share"], 2) if run else None,
    }
    return out, [target(name, overhead <= DISCOVERY_OVERHEAD, f"{overhead:+.0%}", goal)]


def _check_work(looked: dict[str, Any]) -> dict[str, Any]:
    """Per check of one arm: seconds (whole check, detector), grid points and crops done / skipped."""
    checks = max(int(looked["checks"]), 1)

    def per(key: str) -> float | None:
        value = looked.get(key)
        return None if value is None else value / checks

    return {
        "checks": looked["checks"],
        "s_per_check": statistics.mean(looked["seconds"]) if looked["seconds"] else None,
        "detect_s_per_check": statistics.mean(looked["detect_seconds"]) if looked["detect_seconds"] else None,
        "points_per_check": per("points"),
        "skipped_points_per_check": per("skipped_points"),
        "crops_per_check": per("crops"),
        "skipped_crops_per_check": per("skipped_crops"),
    }


def _detect_rows(detect: dict[str, Any]) -> dict[str, Any]:
    """The detector-alone job: per variant, seconds per detect and work per check."""
    checks = max(int(detect["checks"]), 1)
    rows = {
        name: {
            "s_per_detect": statistics.mean(row["seconds"]) if row["seconds"] else None,
            **{f"{key}_per_check": row[key] / checks for key in ("points", "skipped_points", "crops", "skipped_crops")},
        }
        for name, row in detect["variants"].items()
    }
    return {"checks": detect["checks"], "covered_fraction": detect["covered_fraction"], "variants": rows}


SUMMARIES: dict[str, Callable[[dict[str, Any], dict[str, Any]], tuple[Any, Targets]]] = {
    "memory": summarise_memory,
    "equal": summarise_equal,
    "defaults": summarise_defaults,
    "find": summarise_find,
    "gpu": summarise_gpu,
    "discovery": summarise_discovery,
}


def summarise(report: dict[str, Any]) -> tuple[dict[str, Any], Targets]:
    """Derived numbers per section and one PASS/FAIL/NOT RUN row per target, in section order."""
    summary: dict[str, Any] = {}
    targets: Targets = []
    for name in _ordered(SUMMARIES):
        section = report.get(name)
        if section is None:
            continue
        derived, rows = SUMMARIES[name](section, report)
        if derived is not None:
            summary[name] = derived
        targets += rows
    return summary, targets


def _ordered(names: Iterable[str]) -> list[str]:
    known = list(SECTION_NAMES)
    return sorted(names, key=lambda n: known.index(n) if n in known else len(known))
