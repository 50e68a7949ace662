"""Look of the page: a Gradio theme and a little CSS (passed to ``launch()`` in Gradio 6)."""

from __future__ import annotations

import gradio as gr


def theme() -> gr.themes.Base:
    return gr.themes.Soft(
        primary_hue="indigo",
        secondary_hue="amber",
        neutral_hue="slate",
        radius_size="md",
        # system fonts only: the page must not reach out to the internet (offline labs, Spaces)
        font=["ui-sans-serif", "system-ui", "Segoe UI", "Roboto", "Helvetica Neue", "Arial", "sans-serif"],
        font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"],
    ).set(
        block_title_text_weight="600",
        block_title_background_fill="transparent",
        block_title_padding="0",
        block_title_text_color="*neutral_700",
        block_title_text_color_dark="*neutral_200",
        block_label_background_fill="*background_fill_primary",
        block_label_text_color="*neutral_600",
        button_large_text_weight="600",
    )


CSS = """
.gradio-container { max-width: 1280px !important; margin: 0 auto !important; }
#app-header h1 { margin-bottom: 0.1em; }
#app-header p { margin-top: 0; color: var(--body-text-color-subdued); }

.banner { border-radius: 8px; padding: 10px 14px; margin: 4px 0; font-size: 0.95em; }
.banner ul { margin: 6px 0 6px 1.2em; }
.banner code { font-size: 0.9em; }
.banner.warn { background: #fff4d6; border: 1px solid #e8b63a; color: #5a4100; }
.banner.stop { background: #fde7e7; border: 1px solid #d9534f; color: #6b1111; }

.step { border: 1px solid var(--border-color-primary); border-radius: 10px;
        padding: 14px 16px 16px; margin-top: 14px; background: var(--background-fill-primary); }
.step-title h2 { margin: 0 !important; font-size: 1.25em !important; }
.step-help p { margin: 2px 0 6px; color: var(--body-text-color-subdued); font-size: 0.92em; }
.status p { margin: 4px 0; }
.status { min-height: 2.2em; }

#candidates .caption-label { font-size: 0.8em; }
/* Gradio gives galleries a 450 px floor on wide screens; one row of candidates needs less */
#candidates .fixed-height { min-height: 180px !important; }
/* no upscaling of the clickable frame: Gradio maps a click to image pixels assuming scale <= 1 */
#frame-view img, #review-view img, #live-frame img { max-height: 70vh; object-fit: contain; }
.progress-host { min-height: 3.2em; }

.legend { display: flex; flex-wrap: wrap; gap: 6px; padding: 2px 0; }
.legend.empty { color: var(--body-text-color-subdued); font-size: 0.92em; }
.legend .chip { display: inline-flex; align-items: center; gap: 6px; padding: 3px 10px;
                border-radius: 999px; border: 1px solid var(--border-color-primary); font-size: 0.9em; }
.legend .chip.current { border-color: var(--color-accent); box-shadow: 0 0 0 1px var(--color-accent); }
.legend .chip small { color: var(--body-text-color-subdued); }
.legend .swatch { width: 12px; height: 12px; border-radius: 3px; display: inline-block; }

#stop-btn { min-width: 0; }
#name-row { align-items: flex-end; }
#rename-btn { margin-bottom: 4px; }
footer { margin-top: 18px; }
"""
