"""The page: six steps in order, wired to :class:`ui.handlers.Handlers`.

``build_demo(services)`` returns the ``gr.Blocks``; launch it with ``**launch_style()`` (Gradio 6
takes the theme and CSS in ``launch()``). Interactive micro-events are private
(``api_visibility="private"``); the public endpoints ``/track`` and ``/candidates`` (ui/api.py)
are the batch API and, launched with ``mcp_server=True``, the MCP tools.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import gradio as gr

from . import review, text
from .api import PublicAPI
from .gpu import gpu
from .handlers import Handlers
from .services import Services
from .state import SESSION_TTL_SECONDS, SessionStore
from .theme import CSS, theme

logger = logging.getLogger(__name__)

ASSETS = Path(__file__).resolve().parent.parent / "assets"
EXAMPLES = [  # (file in assets/, prompt, label on the button)
    ("bouncing_ball.mp4", "red ball", "Bouncing ball · “red ball”"),
    ("two_cars.mp4", "yellow car", "Two cars · “yellow car”"),
]
MODEL = "model"  # concurrency group of every event that runs a model
FILES = "files"  # opening projects and importing annotations: file work, outside the model slot
PRIVATE: dict[str, Any] = {"api_visibility": "private"}


def launch_style() -> dict[str, Any]:
    """Keyword arguments for ``demo.launch()`` that give the page its look."""
    return {"theme": theme(), "css": CSS + review.CSS, "head": review.SHORTCUTS_HEAD}


def _step(title: str, help_text: str) -> None:
    gr.Markdown(f"## {title}", elem_classes=["step-title"])
    if help_text:
        gr.Markdown(help_text, elem_classes=["step-help"])


def build_demo(services: Services, store: SessionStore | None = None) -> gr.Blocks:
    """The whole app for ``services``; ``store`` holds the per-tab sessions (made if not given)."""
    store = store or SessionStore(services.temp_root, max_bytes=services.max_temp_bytes)
    store.sweep()
    h = Handlers(services, store)
    rv = review.ReviewLoop(h)  # step 5's loop: flags, timeline, fixes, re-tracking, imports
    public = PublicAPI(h)  # /track and /candidates: the batch API and the MCP tools
    ready = services.ready
    model = {"concurrency_id": MODEL, "concurrency_limit": services.model_concurrency}

    with gr.Blocks(title=text.TITLE, delete_cache=(3600, 6 * 3600)) as demo:
        demo.handlers = h  # for tests and embedding
        demo.review_loop = rv
        demo.session_store = store
        session = gr.State(None, time_to_live=SESSION_TTL_SECONDS, delete_callback=store.discard)

        with gr.Column(elem_id="app-header"):
            gr.Markdown(f"# {text.TITLE}\n{text.TAGLINE}")
        if services.random_weights:
            gr.HTML(
                f'<div class="banner warn">{text.RANDOM_WEIGHTS_BANNER}</div>',
                elem_id="random-weights-banner",
            )
        if services.missing_packages:
            problems = [
                (p.module, "is not installed" if p.missing else f"does not import ({p.error})", p.fix)
                for p in services.missing_packages
            ]
            gr.HTML(
                f'<div class="banner stop">{text.missing_packages_banner(problems)}</div>',
                elem_id="missing-packages-banner",
            )
        if services.missing_weights:
            missing = [(m.model, m.fix) for m in services.missing_weights]
            gr.HTML(
                f'<div class="banner stop">{text.missing_weights_banner(missing)}</div>',
                elem_id="missing-weights-banner",
            )

        # 1 · input ----------------------------------------------------------------------------
        with gr.Column(elem_classes=["step"], elem_id="step-input"):
            _step(text.STEP_INPUT, text.HELP_INPUT)
            with gr.Row(equal_height=False):
                with gr.Column(scale=5):
                    video = gr.Video(label="Video", sources=["upload"], elem_id="video-input", height=320)
                with gr.Column(scale=4):
                    prompt = gr.Textbox(
                        label="What to follow",
                        placeholder=text.PROMPT_PLACEHOLDER,
                        info=text.PROMPT_INFO,
                        elem_id="prompt",
                        max_lines=1,
                    )
                    negative = gr.Textbox(
                        label="What not to pick (optional)",
                        placeholder=text.NEGATIVE_PLACEHOLDER,
                        info=text.NEGATIVE_INFO,
                        elem_id="negative-prompt",
                        max_lines=1,
                    )
                    preset = gr.Radio(
                        choices=[(p.label, p.name) for p in services.presets],
                        value=services.default_preset,
                        label="Speed / quality",
                        info=text.PRESET_INFO,
                        elem_id="preset",
                    )
                    estimate = gr.Markdown(elem_id="estimate", elem_classes=["status"])
            shipped = [(name, words, label) for name, words, label in EXAMPLES if (ASSETS / name).is_file()]
            if shipped:
                gr.Examples(
                    [[str(ASSETS / name), words] for name, words, _ in shipped],
                    inputs=[video, prompt],
                    label="Or try an example",
                    example_labels=[label for _, _, label in shipped],
                    api_visibility="private",
                )

        # 2 · find -----------------------------------------------------------------------------
        with gr.Column(elem_classes=["step"], elem_id="step-find"):
            _step(text.STEP_FIND, text.HELP_FIND)
            with gr.Row():
                find_btn = gr.Button(
                    "Find", variant="primary", elem_id="find-btn", interactive=ready, scale=0, min_width=160
                )
                find_status = gr.Markdown(
                    text.NO_CANDIDATES_YET, elem_id="find-status", elem_classes=["status", "progress-host"]
                )
            gallery = gr.Gallery(
                label="Candidates (best first)",
                elem_id="candidates",
                columns=4,
                height="auto",
                allow_preview=False,
                object_fit="contain",
                interactive=False,
            )
            use_btn = gr.Button(
                "Use selected candidate for the current object", size="sm", elem_id="use-selected-btn"
            )

        # 3 · refine ---------------------------------------------------------------------------
        with gr.Column(elem_classes=["step"], elem_id="step-refine"):
            _step(text.STEP_REFINE, text.HELP_REFINE)
            with gr.Row(equal_height=False):
                with gr.Column(scale=3):
                    with gr.Tabs():
                        with gr.Tab("Click", id="click-tab"):
                            frame_view = gr.Image(
                                label="Current frame",
                                elem_id="frame-view",
                                interactive=False,
                                show_label=False,
                                buttons=["fullscreen"],
                                format="jpeg",
                            )
                        with gr.Tab("Brush", id="brush-tab") as brush_tab:
                            gr.Markdown(text.HELP_BRUSH, elem_classes=["step-help"])
                            brush_status = gr.Markdown(elem_id="brush-status", elem_classes=["status"])
                            editor = gr.ImageEditor(
                                label="Brush",
                                elem_id="brush-editor",
                                type="numpy",
                                image_mode="RGBA",
                                sources=[],
                                transforms=[],
                                layers=False,
                                brush=gr.Brush(colors=["#ff3b30"], color_mode="fixed", default_size=18),
                            )
                            with gr.Row():
                                brush_mode = gr.Radio(
                                    text.BRUSH_CHOICES,
                                    value="replace",
                                    show_label=False,
                                    elem_id="brush-mode",
                                    scale=3,
                                )
                                brush_btn = gr.Button(
                                    "Use brushed mask",
                                    variant="primary",
                                    elem_id="brush-apply-btn",
                                    scale=1,
                                    min_width=200,
                                )
                    frame_slider = gr.Slider(
                        0, 1, value=0, step=1, label="Frame", elem_id="frame-slider", interactive=False
                    )
                    refine_status = gr.Markdown(
                        text.NO_VIDEO, elem_id="refine-status", elem_classes=["status"]
                    )
                with gr.Column(scale=1, min_width=280):
                    mode = gr.Radio(
                        text.MODE_CHOICES, value="positive", label="A click means", elem_id="click-mode"
                    )
                    objects = gr.Radio(choices=[], label="Clicks go to", elem_id="objects")
                    legend = gr.HTML(elem_id="object-legend")
                    with gr.Row(equal_height=False, elem_id="name-row"):
                        name = gr.Textbox(
                            label="Name", elem_id="object-name", max_lines=1, scale=3, min_width=120
                        )
                        rename_btn = gr.Button(
                            "Rename", size="sm", scale=1, min_width=70, elem_id="rename-btn"
                        )
                    with gr.Row():
                        add_btn = gr.Button("+ New object", size="sm", min_width=90, elem_id="add-object-btn")
                        remove_btn = gr.Button(
                            "Remove", size="sm", variant="stop", min_width=90, elem_id="remove-object-btn"
                        )
                    with gr.Row():
                        undo_btn = gr.Button("↶ Undo", size="sm", min_width=60, elem_id="undo-btn")
                        redo_btn = gr.Button("↷ Redo", size="sm", min_width=60, elem_id="redo-btn")
                        clear_btn = gr.Button("Clear frame", size="sm", min_width=60, elem_id="clear-btn")

        # 4 · track ----------------------------------------------------------------------------
        with gr.Column(elem_classes=["step"], elem_id="step-track"):
            _step(text.STEP_TRACK, text.HELP_TRACK)
            with gr.Row():
                track_btn = gr.Button(
                    "▶ Track",
                    variant="primary",
                    elem_id="track-btn",
                    interactive=ready,
                    scale=0,
                    min_width=160,
                )
                stop_btn = gr.Button("■ Stop", variant="stop", elem_id="stop-btn", scale=0, min_width=110)
                direction = gr.Radio(
                    [("both ways", "both"), ("forward only", "forward"), ("backward only", "backward")],
                    value="both",
                    label="Direction",
                    elem_id="direction",
                    scale=2,
                )
            track_status = gr.Markdown(elem_id="track-status", elem_classes=["status", "progress-host"])
            result_video = gr.Video(
                label="Overlay",
                elem_id="result-video",
                streaming=services.streaming,
                autoplay=True,
                interactive=False,
                height=420,
            )
            live = gr.Image(
                label="Live", elem_id="live-frame", interactive=False, visible=False, format="jpeg"
            )

        # 5 · review ---------------------------------------------------------------------------
        with gr.Column(elem_classes=["step"], elem_id="step-review"):
            _step(text.STEP_REVIEW, text.HELP_REVIEW)
            review_view = gr.Image(label="Result", elem_id="review-view", interactive=False, show_label=False,
                                   buttons=["fullscreen"], format="jpeg")  # fmt: skip
            timeline = review.build_timeline()
            with gr.Row():
                review_slider = gr.Slider(
                    0, 1, value=0, step=1, label="Frame", elem_id="review-slider", interactive=False, scale=5
                )
                fix_btn = gr.Button("Fix this frame", size="sm", elem_id="fix-btn", scale=1, min_width=140)
            review_status = gr.Markdown(
                text.NOTHING_TRACKED, elem_id="review-status", elem_classes=["status"]
            )
            review_tools = review.build_tools()

        # 6 · download -------------------------------------------------------------------------
        with gr.Column(elem_classes=["step"], elem_id="step-download"):
            _step(text.STEP_DOWNLOAD, text.HELP_DOWNLOAD)
            with gr.Row():
                zip_btn = gr.DownloadButton(
                    "Download everything (.zip)", variant="primary", interactive=False, elem_id="download-zip"
                )
                project_btn = gr.DownloadButton("Save project", interactive=False, elem_id="save-project")
                open_btn = gr.UploadButton("Open project…", elem_id="open-project", file_count="single")
                import_btn = review.build_import()
            download_status = gr.Markdown(
                text.NOTHING_TRACKED, elem_id="download-status", elem_classes=["status"]
            )
            downloads = gr.File(label="Files", file_count="multiple", interactive=False, elem_id="downloads")
            gr.Markdown(text.HELP_OPEN_PROJECT, elem_classes=["step-help"])
            gr.Markdown(review.HELP_IMPORT, elem_classes=["step-help"])

        # the public API (gradio_client, MCP tools): hidden inputs and outputs, two public endpoints
        # (ui/api.py). Labels are the parameter names clients and agents see; keep them equal to
        # the PublicAPI methods' argument names, whose docstrings describe them.
        with gr.Column(visible=False):
            api_video = gr.File(label="video", file_types=["video"])
            api_prompt = gr.Textbox(label="prompt")
            api_negative = gr.Textbox(label="negative_prompt")
            api_preset = gr.Textbox(label="preset")
            api_max_objects = gr.Number(label="max_objects", value=1, precision=0)
            api_max_candidates = gr.Number(label="max_candidates", value=10, precision=0)
            api_overlay = gr.File(label="overlay")
            api_zip = gr.File(label="annotations")
            api_summary = gr.Textbox(label="summary")
            api_candidates = gr.JSON(label="candidates")
            api_best = gr.Image(label="best_candidate", format="png")
            api_trigger = gr.Button("track")
            api_find_trigger = gr.Button("candidates")

        # ---- wiring --------------------------------------------------------------------------
        refine_out = [session, frame_view, frame_slider, objects, legend, name, refine_status]
        find_out = [session, gallery, find_status]
        track_out = [session, result_video, live, track_status]
        review_out = [review_slider, review_view, review_status]
        review_out += [timeline, review_tools.flags, review_tools.flag_filter]  # the loop's (ui/review.py)
        download_out = [downloads, zip_btn, project_btn, download_status]

        def after_reset(event):
            return (
                event.then(h.refine, [session], refine_out, **PRIVATE)
                .then(h.find_view, [session], find_out, **PRIVATE)
                .then(h.reset_track, [session], track_out, **PRIVATE)
                .then(rv.review_view, [session], review_out, **PRIVATE)
                .then(rv.reset_downloads, None, download_out, **PRIVATE)
            )

        after_reset(video.change(h.on_video, [session, video, preset], [session, estimate], **PRIVATE))
        preset.input(h.on_preset, [session, preset], [session, estimate], **PRIVATE)

        find_event = find_btn.click(
            gpu(h.find, duration=120),
            [session, video, prompt, negative, preset],
            find_out,
            validator=h.validate_find,
            show_progress_on=[find_status],
            **model,
            **PRIVATE,
        )
        find_event.success(h.after_find, [session], refine_out, **PRIVATE)
        prompt.submit(None, None, None, js="() => document.querySelector('#find-btn')?.click()")

        gallery.select(gpu(h.pick_candidate), [session], refine_out, **model, **PRIVATE).success(
            h.find_view, [session], find_out, **PRIVATE
        )
        use_btn.click(gpu(h.use_selected), [session], refine_out, **model, **PRIVATE).success(
            h.find_view, [session], find_out, **PRIVATE
        )

        frame_view.select(gpu(h.click), [session], refine_out, **model, **PRIVATE)
        mode.input(h.set_mode, [session, mode], [session, refine_status], **PRIVATE)
        frame_slider.release(h.goto_frame, [session, frame_slider], refine_out, **PRIVATE)
        objects.input(h.select_object, [session, objects], refine_out, **PRIVATE)
        add_btn.click(h.add_object, [session], refine_out, **PRIVATE)
        rename_btn.click(h.rename_object, [session, name], refine_out, **PRIVATE)
        name.submit(h.rename_object, [session, name], refine_out, **PRIVATE)
        remove_btn.click(gpu(h.remove_object), [session], refine_out, **model, **PRIVATE)
        undo_btn.click(gpu(h.undo), [session], refine_out, **model, **PRIVATE)
        redo_btn.click(gpu(h.redo), [session], refine_out, **model, **PRIVATE)
        clear_btn.click(gpu(h.clear_frame), [session], refine_out, **model, **PRIVATE)
        brush_tab.select(h.load_brush, [session], [session, editor, brush_status], **PRIVATE)
        brush_btn.click(
            gpu(h.apply_brush), [session, editor, brush_mode], refine_out, **model, **PRIVATE
        ).success(h.load_brush, [session], [session, editor, brush_status], **PRIVATE)

        track_event = track_btn.click(
            gpu(h.track, duration=600),
            [session, direction],
            track_out,
            show_progress_on=[track_status],
            api_name="track_interactive",
            **model,
            **PRIVATE,
        )
        (
            track_event.success(gpu(rv.check), [session], review_out, **model, **PRIVATE).then(
                rv.prepare_downloads, [session], download_out, **PRIVATE
            )
        )
        (
            stop_btn.click(
                h.stop, [session], [track_status], cancels=[track_event], concurrency_limit=None, **PRIVATE
            )
            .then(h.after_stop, [session], track_out, concurrency_limit=None, **PRIVATE)
            .then(gpu(rv.check), [session], review_out, **model, **PRIVATE)
            .then(rv.prepare_downloads, [session], download_out, **PRIVATE)
        )

        review_slider.input(rv.review_frame, [session, review_slider], review_out[1:5],
                            trigger_mode="always_last", **PRIVATE)  # fmt: skip
        fix_btn.click(rv.fix_frame, [session, review_slider], refine_out, scroll_to_output=True, **PRIVATE)

        files = {"concurrency_id": FILES, "concurrency_limit": 2}
        open_event = open_btn.upload(gpu(h.open_project), [session, open_btn], refine_out, **files, **PRIVATE)
        (
            open_event.success(h.find_view, [session], find_out, **PRIVATE)
            .then(gpu(rv.check), [session], review_out, **model, **PRIVATE)
            .then(rv.prepare_downloads, [session], download_out, **PRIVATE)
        )

        review.wire(
            rv, review_tools, timeline, import_btn, session=session, review_slider=review_slider,
            review_image=review_view, review_status=review_status, mode=mode, refine_status=refine_status,
            refine_out=refine_out, review_out=review_out, download_out=download_out, result_video=result_video,
            model=model, private=PRIVATE, files=files,
        )  # fmt: skip

        api_trigger.click(
            gpu(public.track_video, duration=900),
            [api_video, api_prompt, api_negative, api_preset, api_max_objects],
            [api_overlay, api_zip, api_summary],
            api_name="track",
            api_visibility="public",
            **model,
        )
        api_find_trigger.click(
            gpu(public.find_candidates, duration=120),
            [api_video, api_prompt, api_negative, api_preset, api_max_candidates],
            [api_summary, api_candidates, api_best],
            api_name="candidates",
            api_visibility="public",
            **model,
        )

        def close_tab(request: gr.Request) -> None:
            # fired whenever the page's connection ends, not only on close: mark, never delete
            store.unload(getattr(request, "session_hash", None))

        demo.unload(close_tab)
    # light events (previews, renames) run side by side; model work is limited by its own group
    demo.queue(default_concurrency_limit=4)
    return demo
