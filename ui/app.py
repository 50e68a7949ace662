"""The page: six steps in order, wired to :class:`ui.handlers.Handlers`.

One layout function a step (``_input_step`` … ``_download_step``, each returning its components as a
named tuple) builds a :class:`Page`; one wiring function a step connects it to the handlers.

``build_demo(services)`` returns the ``gr.Blocks``; launch it with ``**launch_style()`` (Gradio 6
takes the theme and CSS in ``launch()``). Interactive micro-events are private
(``api_visibility="private"``); the public endpoints ``/track`` and ``/candidates`` (ui/api.py)
are the batch API and, launched with ``mcp_server=True``, the MCP tools.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

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
# opening projects and importing annotations: file work in its own group, outside the model slot
FILES: dict[str, Any] = {"concurrency_id": "files", "concurrency_limit": 2}
PRIVATE: dict[str, Any] = {"api_visibility": "private"}


def launch_style() -> dict[str, Any]:
    """Keyword arguments for ``demo.launch()`` that give the page its look."""
    return {"theme": theme(), "css": CSS + review.CSS, "head": review.SHORTCUTS_HEAD}


def _step(title: str, help_text: str) -> None:
    gr.Markdown(f"## {title}", elem_classes=["step-title"])
    if help_text:
        gr.Markdown(help_text, elem_classes=["step-help"])


class InputStep(NamedTuple):
    """Step 1: the video, the words, the preset and the estimate."""

    video: gr.Video
    prompt: gr.Textbox
    negative: gr.Textbox
    preset: gr.Radio
    estimate: gr.Markdown


class FindStep(NamedTuple):
    """Step 2: Find, its status, the candidates, the button that uses one, "Not this one" and
    "Find more like this"."""

    find: gr.Button
    status: gr.Markdown
    gallery: gr.Gallery
    use_selected: gr.Button
    reject: gr.Button
    more_like: gr.Button


class RefineStep(NamedTuple):
    """Step 3: the frame (click and brush tabs), its slider and the object controls."""

    frame_view: gr.Image
    brush_tab: gr.Tab
    brush_status: gr.Markdown
    editor: gr.ImageEditor
    brush_mode: gr.Radio
    brush_apply: gr.Button
    frame_slider: gr.Slider
    status: gr.Markdown
    mode: gr.Radio
    objects: gr.Radio
    legend: gr.HTML
    name: gr.Textbox
    rename: gr.Button
    add: gr.Button
    remove: gr.Button
    undo: gr.Button
    redo: gr.Button
    clear: gr.Button


class ObjectControls(NamedTuple):
    """Step 3's right-hand column."""

    mode: gr.Radio
    objects: gr.Radio
    legend: gr.HTML
    name: gr.Textbox
    rename: gr.Button
    add: gr.Button
    remove: gr.Button
    undo: gr.Button
    redo: gr.Button
    clear: gr.Button


class TrackStep(NamedTuple):
    """Step 4: Track, Stop, the direction, finding new ones while tracking (switch and interval),
    the status, the overlay and the live frame."""

    track: gr.Button
    stop: gr.Button
    direction: gr.Radio
    status: gr.Markdown
    result_video: gr.Video
    live: gr.Image
    discover: gr.Checkbox
    discover_every: gr.Number


class ReviewStep(NamedTuple):
    """Step 5: the review picture, the timeline, the slider, Fix this frame, the status, the loop's tools."""

    view: gr.Image
    timeline: gr.Image
    slider: gr.Slider
    fix: gr.Button
    status: gr.Markdown
    tools: review.ReviewTools


class DownloadStep(NamedTuple):
    """Step 6: the zip and project buttons, open and import, the status and the files."""

    zip_button: gr.DownloadButton
    project_button: gr.DownloadButton
    open_project: gr.UploadButton
    import_annotations: gr.UploadButton
    status: gr.Markdown
    files: gr.File


class ApiComponents(NamedTuple):
    """The public endpoints' hidden inputs, outputs and triggers (ui/api.py)."""

    video: gr.File
    prompt: gr.Textbox
    negative: gr.Textbox
    preset: gr.Textbox
    max_objects: gr.Number
    max_candidates: gr.Number
    overlay: gr.File
    annotations: gr.File
    summary: gr.Textbox
    candidates: gr.JSON
    best: gr.Image
    track: gr.Button
    find: gr.Button
    discover: gr.Checkbox
    discover_every: gr.Number


@dataclass
class Page:
    """Every step's components plus the session state, and the output lists events share."""

    session: gr.State
    input: InputStep
    find: FindStep
    refine: RefineStep
    track: TrackStep
    review: ReviewStep
    download: DownloadStep
    api: ApiComponents

    @property
    def refine_out(self) -> list:
        step = self.refine
        return [
            self.session,
            step.frame_view,
            step.frame_slider,
            step.objects,
            step.legend,
            step.name,
            step.status,
        ]

    @property
    def find_out(self) -> list:
        return [self.session, self.find.gallery, self.find.status]

    @property
    def track_out(self) -> list:
        return [self.session, self.track.result_video, self.track.live, self.track.status]

    @property
    def review_out(self) -> list:
        step = self.review
        # the loop's own outputs (ui/review.py) after the slider, the picture and the status
        return [step.slider, step.view, step.status, step.timeline, step.tools.flags, step.tools.flag_filter]

    @property
    def download_out(self) -> list:
        step = self.download
        return [step.files, step.zip_button, step.project_button, step.status]


# ---------------------------------------------------------------------- layout, one function a step
def _header(services: Services) -> None:
    """The title and the banners for random weights, missing packages and missing weights."""
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


def _input_step(services: Services) -> InputStep:
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
    return InputStep(video, prompt, negative, preset, estimate)


def _find_step(ready: bool) -> FindStep:
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
            label="Candidates",
            elem_id="candidates",
            columns=4,
            height="auto",
            allow_preview=False,
            object_fit="contain",
            interactive=False,
        )
        with gr.Row():
            use_btn = gr.Button(
                "Use selected candidate for the current object", size="sm", elem_id="use-selected-btn"
            )
            reject_btn = gr.Button("Not this one", size="sm", variant="stop", elem_id="reject-candidate-btn")
            more_btn = gr.Button("Find more like this", size="sm", elem_id="more-like-btn")
    return FindStep(find_btn, find_status, gallery, use_btn, reject_btn, more_btn)


def _brush_tab() -> tuple[gr.Tab, gr.Markdown, gr.ImageEditor, gr.Radio, gr.Button]:
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
                text.BRUSH_CHOICES, value="replace", show_label=False, elem_id="brush-mode", scale=3
            )
            brush_btn = gr.Button(
                "Use brushed mask", variant="primary", elem_id="brush-apply-btn", scale=1, min_width=200
            )
    return brush_tab, brush_status, editor, brush_mode, brush_btn


def _object_controls() -> ObjectControls:
    mode = gr.Radio(text.MODE_CHOICES, value="positive", label="A click means", elem_id="click-mode")
    objects = gr.Radio(choices=[], label="Clicks go to", elem_id="objects")
    legend = gr.HTML(elem_id="object-legend")
    with gr.Row(equal_height=False, elem_id="name-row"):
        name = gr.Textbox(label="Name", elem_id="object-name", max_lines=1, scale=3, min_width=120)
        rename_btn = gr.Button("Rename", size="sm", scale=1, min_width=70, elem_id="rename-btn")
    with gr.Row():
        add_btn = gr.Button("+ New object", size="sm", min_width=90, elem_id="add-object-btn")
        remove_btn = gr.Button("Remove", size="sm", variant="stop", min_width=90, elem_id="remove-object-btn")
    with gr.Row():
        undo_btn = gr.Button("↶ Undo", size="sm", min_width=60, elem_id="undo-btn")
        redo_btn = gr.Button("↷ Redo", size="sm", min_width=60, elem_id="redo-btn")
        clear_btn = gr.Button("Clear frame", size="sm", min_width=60, elem_id="clear-btn")
    return ObjectControls(
        mode, objects, legend, name, rename_btn, add_btn, remove_btn, undo_btn, redo_btn, clear_btn
    )


def _refine_step() -> RefineStep:
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
                    brush = _brush_tab()
                frame_slider = gr.Slider(
                    0, 1, value=0, step=1, label="Frame", elem_id="frame-slider", interactive=False
                )
                refine_status = gr.Markdown(text.NO_VIDEO, elem_id="refine-status", elem_classes=["status"])
            with gr.Column(scale=1, min_width=280):
                controls = _object_controls()
    return RefineStep(frame_view, *brush, frame_slider, refine_status, *controls)


def _track_step(services: Services) -> TrackStep:
    with gr.Column(elem_classes=["step"], elem_id="step-track"):
        _step(text.STEP_TRACK, text.HELP_TRACK)
        with gr.Row():
            track_btn = gr.Button(
                "▶ Track",
                variant="primary",
                elem_id="track-btn",
                interactive=services.ready,
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
            discover = gr.Checkbox(
                value=services.discover_default,
                label="Find new ones while tracking",
                info=text.DISCOVER_INFO if services.discovery_available else text.DISCOVER_UNAVAILABLE,
                interactive=services.discovery_available,
                elem_id="discover",
                scale=1,
            )
            discover_every = gr.Number(
                value=20,
                precision=0,
                minimum=1,
                label="check every N frames",
                elem_id="discover-every",
                scale=0,
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
        live = gr.Image(label="Live", elem_id="live-frame", interactive=False, visible=False, format="jpeg")
    return TrackStep(
        track_btn, stop_btn, direction, track_status, result_video, live, discover, discover_every
    )


def _review_step() -> ReviewStep:
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
        review_status = gr.Markdown(text.NOTHING_TRACKED, elem_id="review-status", elem_classes=["status"])
        tools = review.build_tools()
    return ReviewStep(review_view, timeline, review_slider, fix_btn, review_status, tools)


def _download_step() -> DownloadStep:
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
    return DownloadStep(zip_btn, project_btn, open_btn, import_btn, download_status, downloads)


def _api_components(discover_default: bool) -> ApiComponents:
    """Hidden inputs and outputs of the two public endpoints (gradio_client, MCP tools).

    Labels are the parameter names clients and agents see; keep them equal to the
    :class:`ui.api.PublicAPI` methods' argument names, whose docstrings describe them.
    """
    with gr.Column(visible=False):
        return ApiComponents(
            video=gr.File(label="video", file_types=["video"]),
            prompt=gr.Textbox(label="prompt"),
            negative=gr.Textbox(label="negative_prompt"),
            preset=gr.Textbox(label="preset"),
            max_objects=gr.Number(label="max_objects", value=1, precision=0),
            max_candidates=gr.Number(label="max_candidates", value=10, precision=0),
            overlay=gr.File(label="overlay"),
            annotations=gr.File(label="annotations"),
            summary=gr.Textbox(label="summary"),
            candidates=gr.JSON(label="candidates"),
            best=gr.Image(label="best_candidate", format="png"),
            track=gr.Button("track"),
            find=gr.Button("candidates"),
            discover=gr.Checkbox(label="discover", value=discover_default),
            discover_every=gr.Number(label="discover_every", value=None, precision=0),
        )


# ---------------------------------------------------------------------- wiring, one function a step
def _wire_input_and_find(page: Page, handlers: Handlers, review_loop: review.ReviewLoop, model: dict) -> None:
    """Steps 1-2: a new video resets every later step; Find, picking and using a candidate."""
    session, step, find = page.session, page.input, page.find
    refine_out, find_out = page.refine_out, page.find_out
    (
        step.video.change(
            handlers.on_video, [session, step.video, step.preset], [session, step.estimate], **PRIVATE
        )
        .then(handlers.refine, [session], refine_out, **PRIVATE)
        .then(handlers.find_view, [session], find_out, **PRIVATE)
        .then(handlers.reset_track, [session], page.track_out, **PRIVATE)
        .then(review_loop.review_view, [session], page.review_out, **PRIVATE)
        .then(review_loop.reset_downloads, None, page.download_out, **PRIVATE)
    )
    step.preset.input(handlers.on_preset, [session, step.preset], [session, step.estimate], **PRIVATE)

    find_event = find.find.click(
        gpu(handlers.find, duration=120),
        [session, step.video, step.prompt, step.negative, step.preset],
        find_out,
        validator=handlers.validate_find,
        show_progress_on=[find.status],
        **model,
        **PRIVATE,
    )
    find_event.success(handlers.after_find, [session], refine_out, **PRIVATE)
    step.prompt.submit(None, None, None, js="() => document.querySelector('#find-btn')?.click()")

    find.gallery.select(gpu(handlers.pick_candidate), [session], refine_out, **model, **PRIVATE).success(
        handlers.find_view, [session], find_out, **PRIVATE
    )
    find.use_selected.click(gpu(handlers.use_selected), [session], refine_out, **model, **PRIVATE).success(
        handlers.find_view, [session], find_out, **PRIVATE
    )
    # "Not this one" may remove the object the candidate became (SAM 2's state): the model slot
    reject = find.reject.click(gpu(handlers.reject_candidate), [session], find_out, **model, **PRIVATE)
    reject.success(handlers.refine, [session], refine_out, **PRIVATE)
    # re-ranking by stored embeddings: no model
    more_like = find.more_like.click(handlers.more_like, [session], find_out, **PRIVATE)
    for reranked in (reject, more_like):  # the highlight follows the selected candidate
        reranked.success(handlers.gallery_selection, [session], [find.gallery], **PRIVATE)


def _wire_refine(page: Page, handlers: Handlers, model: dict) -> None:
    """Step 3: clicks, the frame slider, objects, undo / redo, the brush."""
    session, step, refine_out = page.session, page.refine, page.refine_out
    step.frame_view.select(gpu(handlers.click), [session], refine_out, **model, **PRIVATE)
    step.mode.input(handlers.set_mode, [session, step.mode], [session, step.status], **PRIVATE)
    step.frame_slider.release(handlers.goto_frame, [session, step.frame_slider], refine_out, **PRIVATE)
    step.objects.input(handlers.select_object, [session, step.objects], refine_out, **PRIVATE)
    step.add.click(handlers.add_object, [session], refine_out, **PRIVATE)
    step.rename.click(handlers.rename_object, [session, step.name], refine_out, **PRIVATE)
    step.name.submit(handlers.rename_object, [session, step.name], refine_out, **PRIVATE)
    step.remove.click(gpu(handlers.remove_object), [session], refine_out, **model, **PRIVATE)
    step.undo.click(gpu(handlers.undo), [session], refine_out, **model, **PRIVATE)
    step.redo.click(gpu(handlers.redo), [session], refine_out, **model, **PRIVATE)
    step.clear.click(gpu(handlers.clear_frame), [session], refine_out, **model, **PRIVATE)
    brush_out = [session, step.editor, step.brush_status]
    step.brush_tab.select(handlers.load_brush, [session], brush_out, **PRIVATE)
    step.brush_apply.click(
        gpu(handlers.apply_brush), [session, step.editor, step.brush_mode], refine_out, **model, **PRIVATE
    ).success(handlers.load_brush, [session], brush_out, **PRIVATE)


def _wire_track(page: Page, handlers: Handlers, review_loop: review.ReviewLoop, model: dict) -> None:
    """Step 4: Track, then step 3's object list (objects found while tracking join it), flags and
    downloads; Stop cancels the run and shows what it got."""
    session, step = page.session, page.track
    track_event = step.track.click(
        gpu(handlers.track, duration=600),
        [session, step.direction, step.discover, step.discover_every],
        page.track_out,
        show_progress_on=[step.status],
        api_name="track_interactive",
        **model,
        **PRIVATE,
    )
    (
        track_event.success(handlers.refine, [session], page.refine_out, **PRIVATE)
        .then(gpu(review_loop.check), [session], page.review_out, **model, **PRIVATE)
        .then(review_loop.prepare_downloads, [session], page.download_out, **PRIVATE)
    )
    (
        step.stop.click(
            handlers.stop, [session], [step.status], cancels=[track_event], concurrency_limit=None, **PRIVATE
        )
        .then(handlers.after_stop, [session], page.track_out, concurrency_limit=None, **PRIVATE)
        .then(handlers.refine, [session], page.refine_out, **PRIVATE)
        .then(gpu(review_loop.check), [session], page.review_out, **model, **PRIVATE)
        .then(review_loop.prepare_downloads, [session], page.download_out, **PRIVATE)
    )


def _wire_review_and_download(
    page: Page, handlers: Handlers, review_loop: review.ReviewLoop, model: dict
) -> None:
    """Steps 5-6: the review slider, Fix this frame, opening a project, and the loop's own events."""
    session, step, download = page.session, page.review, page.download
    refine_out, review_out, download_out = page.refine_out, page.review_out, page.download_out
    step.slider.input(review_loop.review_frame, [session, step.slider], review_out[1:5],
                      trigger_mode="always_last", **PRIVATE)  # fmt: skip
    step.fix.click(
        review_loop.fix_frame, [session, step.slider], refine_out, scroll_to_output=True, **PRIVATE
    )

    open_event = download.open_project.upload(
        gpu(handlers.open_project), [session, download.open_project], refine_out, **FILES, **PRIVATE
    )
    (
        open_event.success(handlers.find_view, [session], page.find_out, **PRIVATE)
        .then(gpu(review_loop.check), [session], review_out, **model, **PRIVATE)
        .then(review_loop.prepare_downloads, [session], download_out, **PRIVATE)
    )

    review.wire(
        review_loop, step.tools, step.timeline, download.import_annotations, session=session,
        review_slider=step.slider, review_image=step.view, review_status=step.status, mode=page.refine.mode,
        refine_status=page.refine.status, refine_out=refine_out, review_out=review_out,
        download_out=download_out, result_video=page.track.result_video, model=model, private=PRIVATE,
        files=FILES,
    )  # fmt: skip


def _wire_api(api: ApiComponents, public: PublicAPI, model: dict) -> None:
    """The two public endpoints, ``/track`` and ``/candidates``."""
    api.track.click(
        gpu(public.track_video, duration=900),
        [api.video, api.prompt, api.negative, api.preset, api.max_objects, api.discover, api.discover_every],
        [api.overlay, api.annotations, api.summary],
        api_name="track",
        api_visibility="public",
        **model,
    )
    api.find.click(
        gpu(public.find_candidates, duration=120),
        [api.video, api.prompt, api.negative, api.preset, api.max_candidates],
        [api.summary, api.candidates, api.best],
        api_name="candidates",
        api_visibility="public",
        **model,
    )


# ---------------------------------------------------------------------- the page
def build_demo(services: Services, store: SessionStore | None = None) -> gr.Blocks:
    """The whole app for ``services``; ``store`` holds the per-tab sessions (made if not given)."""
    store = store or SessionStore(services.temp_root, max_bytes=services.max_temp_bytes)
    store.sweep()
    handlers = Handlers(services, store)
    review_loop = review.ReviewLoop(handlers)  # step 5's loop: flags, timeline, fixes, re-tracking, imports
    public = PublicAPI(handlers)  # /track and /candidates: the batch API and the MCP tools
    model = {"concurrency_id": MODEL, "concurrency_limit": services.model_concurrency}

    with gr.Blocks(title=text.TITLE, delete_cache=(3600, 6 * 3600)) as demo:
        demo.handlers = handlers  # for tests and embedding
        demo.review_loop = review_loop
        demo.session_store = store
        session = gr.State(None, time_to_live=SESSION_TTL_SECONDS, delete_callback=store.discard)
        _header(services)
        page = Page(
            session,
            input=_input_step(services),
            find=_find_step(services.ready),
            refine=_refine_step(),
            track=_track_step(services),
            review=_review_step(),
            download=_download_step(),
            api=_api_components(services.discover_default),
        )
        _wire_input_and_find(page, handlers, review_loop, model)
        _wire_refine(page, handlers, model)
        _wire_track(page, handlers, review_loop, model)
        _wire_review_and_download(page, handlers, review_loop, model)
        _wire_api(page.api, public, model)

        def close_tab(request: gr.Request) -> None:
            # fired whenever the page's connection ends, not only on close: mark, never delete
            store.unload(getattr(request, "session_hash", None))

        demo.unload(close_tab)
    # light events (previews, renames) run side by side; model work is limited by its own group
    demo.queue(default_concurrency_limit=4)
    return demo
