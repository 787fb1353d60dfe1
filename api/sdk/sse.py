"""A parser of ``text/event-stream`` lines (the job event stream)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

__all__ = ["SseFrames", "parse_sse", "parse_sse_async"]


class SseFrames:
    """Accumulates lines into frames ``{"id", "event", "data"}`` (comments skipped; ``data`` JSON
    when it parses)."""

    def __init__(self) -> None:
        self.frame: dict[str, Any] = {}
        self.data: list[str] = []

    def feed(self, line: str) -> dict[str, Any] | None:
        """The frame a blank line completes, else None."""
        if not line:
            out = None
            if self.data:
                raw = "\n".join(self.data)
                try:
                    self.frame["data"] = json.loads(raw)
                except ValueError:
                    self.frame["data"] = raw
                out = self.frame
            self.frame, self.data = {}, []
            return out
        if line.startswith(":"):
            return None
        key, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if key == "data":
            self.data.append(value)
        elif key == "id":
            self.frame["id"] = int(value) if value.isdigit() else value
        elif key == "event":
            self.frame["event"] = value
        return None


def parse_sse(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    """The frames of a stream of lines."""
    frames = SseFrames()
    for line in lines:
        frame = frames.feed(line)
        if frame is not None:
            yield frame


async def parse_sse_async(lines: AsyncIterator[str]) -> AsyncIterator[dict[str, Any]]:
    """The frames of an asynchronous stream of lines."""
    frames = SseFrames()
    async for line in lines:
        frame = frames.feed(line)
        if frame is not None:
            yield frame
