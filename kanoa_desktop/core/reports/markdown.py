"""Markdown from models and files, made safe to render or to nest in a report.

- :func:`render_markdown`: model text as HTML in which nothing runs or loads (raw HTML
  escaped, images as plain text, unsafe link schemes refused).
- :func:`demote_headings`: answer headings nested under a report's own.
"""

from __future__ import annotations

import html

from kanoa_desktop.core.safety import defang_images

_SAFE_SCHEMES = ("http:", "https:", "mailto:", "#")


def markdown_renderer():
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")
    md.enable("strikethrough")

    def validate(url: str) -> bool:
        u = url.strip().lower()
        return u.startswith(_SAFE_SCHEMES) or ":" not in u.split("/", 1)[0]

    def image_as_text(tokens, idx, options, env):  # noqa: ARG001 - markdown-it's signature
        # Defense in depth behind defang_images: an image token never becomes <img>.
        return f"[image: {html.escape(tokens[idx].content or 'untitled')}]"

    md.validateLink = validate
    md.add_render_rule("image", image_as_text)
    return md


def render_markdown(text: str) -> str:
    """Model text as safe HTML: raw HTML is escaped, images become plain links, unsafe
    link schemes are refused (nothing in the result loads a resource)."""
    return markdown_renderer().render(defang_images(text))



def demote_headings(markdown: str, levels: int = 3) -> str:
    """Answer text nested under a report's own headings: ``## x`` becomes ``##### x``
    (at most level 6); fenced code is left alone."""
    out, fence = [], ""
    for line in markdown.splitlines():
        stripped = line.lstrip()
        if stripped.startswith(("```", "~~~")):
            mark = stripped[:3]
            fence = "" if fence == mark else (fence or mark)
        elif not fence and stripped.startswith("#"):
            hashes = len(stripped) - len(stripped.lstrip("#"))
            if hashes <= 6 and stripped[hashes : hashes + 1] in (" ", ""):
                line = "#" * min(6, hashes + levels) + stripped[hashes:]
        out.append(line)
    return "\n".join(out)


__all__ = ["demote_headings", "markdown_renderer", "render_markdown"]
