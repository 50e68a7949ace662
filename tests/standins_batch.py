"""Named stand-ins for the batch tests: what random weights cannot make happen, on the real workspace.

:func:`open_workspace` is passed to :func:`tracker.batch.run` as
``"tests.standins_batch:open_workspace"`` and is called on the Ray worker. It opens the real
:class:`~tracker.workspace.Workspace` (real models, random weights) with three decisions taken
from the prompt, because random weights keep every candidate whatever the prompt:

* a prompt containing ``nothing`` finds nothing (:class:`~tracker.errors.NoCandidates`, as a
  real model does for a prompt that matches nothing);
* a prompt containing ``crash`` kills the worker process (``os._exit``) after two tracked
  frames, once: the first time it leaves ``<video>.crashed`` beside the video, and a fresh
  worker that sees that file tracks the video normally;
* a prompt containing ``slow`` sleeps 0.3 s after each tracked frame (time for a stop to land).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from tracker.errors import NoCandidates
from tracker.workspace import Workspace


class BatchStandIn(Workspace):
    prompt: str = ""

    def find_candidates(self, prompt, negative_prompt=None, cancel=None):
        self.prompt = prompt
        if "nothing" in prompt:
            raise NoCandidates(prompt, None, self.settings.threshold)
        return super().find_candidates(prompt, negative_prompt, cancel)

    def track(self, *args, **kwargs):
        marker = Path(str(self.info.path) + ".crashed")
        for count, event in enumerate(super().track(*args, **kwargs), 1):
            yield event
            if "crash" in self.prompt and count == 2 and not marker.exists():
                marker.write_text(str(os.getpid()))
                os._exit(3)
            if "slow" in self.prompt:
                time.sleep(0.3)


def open_workspace(hub, video, settings, workdir) -> Workspace:
    return BatchStandIn.open(video, hub, settings, workdir)
