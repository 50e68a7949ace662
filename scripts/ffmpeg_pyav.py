#!/usr/bin/env python3
"""A stand-in for the ``ffmpeg`` command on a machine with PyAV but no ffmpeg binary.

The GPU machine has no package index and takes at most 64 MiB of files per call; imageio-ffmpeg's
wheel (its bundled ffmpeg) alone is 68 MB. PyAV's wheel carries the same libraries (libavcodec
with libx264), so ``benchmarks/gpu.sh`` points ``IMAGEIO_FFMPEG_EXE`` at a wrapper of this script
when no ``ffmpeg`` is installed. It understands only what the tracker, its tests and benchmark
ask of ffmpeg, and refuses anything else (exit status 2, naming the option):

* raw frames on stdin → an H.264 mp4: ``tracker.render.OverlayWriter`` and
  ``imageio_ffmpeg.write_frames`` (``-f rawvideo -pix_fmt rgb24 -s WxH -framerate|-r R -i -|pipe:0
  [-an] -c:v|-vcodec libx264 [-preset P] [-crf N] -pix_fmt yuv420p [-vf pad=…] [-movflags
  +faststart] [-f mp4] OUT``);
* ``-f concat -safe 0 -i LIST -c copy [-an] OUT``: ``benchmarks/media.looped_video``;
* ``-version``: imageio-ffmpeg's check that the executable runs.

Encoding runs in this process, as ffmpeg's would in its own, with the same encoder and settings.
"""

from __future__ import annotations

import shlex
import sys
from fractions import Fraction
from pathlib import Path

FLAGS = {"-y", "-an", "-hide_banner", "-nostdin"}
VALUED = {
    "-f", "-pix_fmt", "-s", "-framerate", "-r", "-vcodec", "-c:v", "-c", "-codec", "-preset", "-crf",
    "-vf", "-movflags", "-safe", "-loglevel", "-v", "-b:v", "-qscale:v",
}  # fmt: skip
EVEN_PAD = "pad=ceil(iw/2)*2:ceil(ih/2)*2"


class Unsupported(Exception):
    pass


def parse(argv: list[str]) -> tuple[list[tuple[str, dict[str, str]]], dict[str, str], str]:
    """``(inputs, output options, output path)``; each input is ``(url, its options)``."""
    inputs: list[tuple[str, dict[str, str]]] = []
    options: dict[str, str] = {}
    output = None
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in FLAGS:
            options[arg] = ""
            i += 1
        elif arg == "-i":
            inputs.append((argv[i + 1], options))
            options = {}
            i += 2
        elif arg in VALUED:
            options[arg] = argv[i + 1]
            i += 2
        elif arg.startswith("-") and arg not in ("-",):
            raise Unsupported(f"option {arg} (see scripts/ffmpeg_pyav.py for what it handles)")
        else:
            output = arg
            i += 1
    if not inputs or output is None:
        raise Unsupported("a command without -i INPUT and OUTPUT")
    return inputs, options, output


def encode_raw(source: dict[str, str], options: dict[str, str], output: str) -> None:
    import av
    import numpy as np

    if source.get("-f") != "rawvideo" or source.get("-pix_fmt", "rgb24") != "rgb24":
        raise Unsupported("raw input other than -f rawvideo -pix_fmt rgb24")
    width, height = (int(v) for v in source["-s"].split("x"))
    rate = Fraction(source.get("-framerate") or source.get("-r") or "25").limit_denominator(100000)
    codec = options.get("-c:v") or options.get("-vcodec") or "libx264"
    pad = options.get("-vf")
    if pad not in (None, EVEN_PAD):
        raise Unsupported(f"filter {pad}")
    out_w, out_h = (width + width % 2, height + height % 2) if pad else (width, height)
    container_options = {"movflags": options["-movflags"]} if "-movflags" in options else {}
    with av.open(output, "w", format=options.get("-f"), options=container_options) as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height = out_w, out_h
        stream.pix_fmt = options.get("-pix_fmt", "yuv420p")
        stream.options = {k[1:]: options[k] for k in ("-preset", "-crf") if k in options}
        if "-b:v" in options:
            rate_text = options["-b:v"]
            scale = 1000 if rate_text[-1:] in ("k", "K") else 1
            stream.bit_rate = int(float(rate_text.rstrip("kK")) * scale)
        frame_bytes = width * height * 3
        pipe = sys.stdin.buffer
        while True:
            data = pipe.read(frame_bytes)
            if len(data) < frame_bytes:
                break
            pixels = np.frombuffer(data, dtype=np.uint8).reshape(height, width, 3)
            if (out_w, out_h) != (width, height):
                pixels = np.pad(pixels, ((0, out_h - height), (0, out_w - width), (0, 0)))
            container.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        container.mux(stream.encode(None))


def concat_copy(listing: str, output: str) -> None:
    """The concat demuxer with stream copy: the files' video packets one after another, retimed."""
    import av

    files = [
        shlex.split(line.strip()[5:])[0]
        for line in Path(listing).read_text().splitlines()
        if line.startswith("file ")
    ]
    with av.open(output, "w") as out:
        target = None
        offset = 0
        for name in files:
            with av.open(name) as source:
                video = source.streams.video[0]
                if target is None:
                    target = out.add_stream_from_template(video)
                end = offset
                for packet in source.demux(video):
                    if packet.dts is None:
                        continue
                    # every listed file is the same clip here, so one time base: shift by the end so far
                    packet.pts = None if packet.pts is None else packet.pts + offset
                    packet.dts += offset
                    end = max(end, (packet.pts or packet.dts) + (packet.duration or 0))
                    packet.stream = target
                    out.mux(packet)
                offset = end


def main(argv: list[str]) -> int:
    if argv[:1] in (["-version"], ["--version"]):
        import av

        print(f"ffmpeg version pyav-standin (PyAV {av.__version__})")
        return 0
    try:
        inputs, options, output = parse(argv)
        if len(inputs) != 1:
            raise Unsupported("more than one input")
        url, source = inputs[0]
        if source.get("-f") == "concat":
            if options.get("-c") != "copy":
                raise Unsupported("concat without -c copy")
            concat_copy(url, output)
        elif url in ("-", "pipe:0", "pipe:"):
            encode_raw(source, options, output)
        else:
            raise Unsupported(f"input {url} (only raw frames on stdin or a concat list)")
    except Unsupported as exc:
        print(f"ffmpeg_pyav: unsupported: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
