"""What the page is told of the loop, as JSON-ready dicts: the status (figures, labels and counts, what comes next)
and one video (its answer, its suggestions, where to go back and forward). No server, no model."""

from __future__ import annotations

from typing import Any

from vivit_cli.label.loop import Loop

OTHERS = 3  # next best labels shown under the suggestion


def status(loop: Loop, current: int | None = None) -> dict[str, Any]:
    with loop.lock:
        counts = {label: 0 for label in loop.project.labels}
        for _, label in loop.answered():
            counts[label] = counts.get(label, 0) + 1
        return {
            "version": loop.version,
            "project": str(loop.project.folder),
            "total": len(loop.project.videos),
            "answered": len(loop.answered()),
            "labels": [{"name": name, "count": n} for name, n in counts.items()],
            "accuracy": None if loop.accuracy is None else vars(loop.accuracy),
            "embedding": vars(loop.embedding),
            "upcoming": [_brief(loop, i) for i in loop.upcoming(current)],
        }


def video(loop: Loop, i: int) -> dict[str, Any]:
    with loop.lock:
        path = loop.project.videos[i]
        state = loop.answers.state
        history = [n for n, _ in loop.answered()]
        suggestions = loop.suggestions(i)
        at = history.index(i) if i in history else len(history)
        later = history[at + 1 :] or loop.upcoming(i)[:1]
        return {
            "index": i,
            "path": path,
            "answer": state.current.get(path),
            "skipped": path in state.skipped,
            "suggestion": vars(suggestions[0]) if suggestions else None,
            "others": [vars(s) for s in suggestions[1 : 1 + OTHERS]],
            "embedded": i in loop.features,
            "error": loop.errors.get(i),
            "prev": history[at - 1] if at > 0 else None,
            "next": later[0] if later else None,
        }


def _brief(loop: Loop, i: int) -> dict[str, Any]:
    top = loop.suggestions(i)[:1]
    return {"index": i, "path": loop.project.videos[i], "suggestion": vars(top[0]) if top else None}
