"""The web app: ``python app.py [--random-weights] [--host H] [--port P] [--share] [--auth U:P]``.

Also the Hugging Face Space entry point (``app_file: app.py``). See docs/WEBAPP.md.
"""

from __future__ import annotations

import os

# Before torch loads: libgomp's threads spin-wait by default, which makes SAM 2 several times
# slower whenever other processes share the cores (measured in benchmarks/README.md). A short spin
# costs ~4 % on an idle machine and keeps a busy one from thrashing.
os.environ.setdefault("GOMP_SPINCOUNT", "10000")

import sys

from tracker.errors import TrackerError
from ui.app import build_demo, launch_style
from ui.launch import (
    build_parser,
    check_temp_root,
    configure_logging,
    guard_options,
    launch_options,
    limits_from,
    settings_from,
)
from ui.services import Services
from ui.state import UPLOAD_CACHE_NAME


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.verbose)
    os.umask(0o077)  # results, uploads and folders are the server user's alone
    try:
        options = launch_options(args)
        services = Services.from_settings(
            settings_from(args), args.temp_dir, args.concurrency, **limits_from(args)
        )
        check_temp_root(services.temp_root)
        # Gradio's upload cache under the private root, where the disk cap counts it
        os.environ.setdefault("GRADIO_TEMP_DIR", str(services.temp_root / UPLOAD_CACHE_NAME))
        options.update(guard_options(args))
    except TrackerError as error:
        print(f"error: {error}", file=sys.stderr)  # noqa: T201 (the app's own command line)
        return error.exit_code
    demo = build_demo(services)
    demo.launch(**options, **launch_style())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
