"""HTML documents: the page's main content (trafilatura), as text with markdown headings.

A site export carries its chrome on every page: navigation, search boxes, theme pickers, cookie
banners, "keyboard shortcuts" help. A tag list (``nav``, ``header``, ``footer``) misses most of it,
because sites build it from ``div``s. trafilatura finds the main content by its text density and
structure; its cleaned HTML is then turned into text here, with ``<h1>``..``<h6>`` as markdown
``#`` headings (the ``heading`` chunker and the chunks' heading paths read them) and blocks as
paragraphs. On a page where trafilatura finds no structure (a tiny page, or one it gives up on: it
then returns one flat paragraph or nothing), the whole page is read with the tag list instead.
"""

from __future__ import annotations

import logging
import re
from html.parser import HTMLParser

from components.data.errors import InputError
from components.data.source import SourceFile, decode_utf8, document

logger = logging.getLogger(__name__)

_MD_TITLE = re.compile(r"^#\s+(.+)$", flags=re.MULTILINE)


class _HtmlText(HTMLParser):
    """Visible text of an HTML page, with headings as markdown ``#`` lines and blocks as paragraphs.

    ``inline_pre``: a ``<pre>`` inside a ``<p>`` is inline code (trafilatura writes ``<code>`` so),
    not a block.
    """

    SKIP = frozenset({"script", "style", "nav", "header", "footer", "aside", "noscript", "template", "svg", "head"})
    BLOCK = frozenset({
        "p", "div", "section", "article", "main", "li", "ul", "ol", "table", "tr", "blockquote", "pre",
        "h1", "h2", "h3", "h4", "h5", "h6", "dl", "dt", "dd", "figure", "figcaption", "hr", "body",
    })  # fmt: skip

    def __init__(self, inline_pre: bool = False) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title: list[str] = []
        self.skip = 0
        self.pre = 0
        self.in_p = 0
        self.inline_pre = inline_pre
        self.in_title = False

    def _block(self, tag: str) -> bool:
        return tag in self.BLOCK and not (tag == "pre" and self.inline_pre and self.in_p)

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "title":
            self.in_title = True
        elif tag in self.SKIP:
            self.skip += 1
        elif not self.skip:
            if self._block(tag):
                self.parts.append("\n\n")
            if tag == "p":
                self.in_p += 1
            if len(tag) == 2 and tag[0] == "h" and tag[1] in "123456":
                self.parts.append("#" * int(tag[1]) + " ")
            elif tag == "li":
                self.parts.append("- ")
            elif tag == "br":
                self.parts.append("\n")
            elif tag == "pre" and self._block(tag):
                self.pre += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self.in_title = False
        elif tag in self.SKIP:
            self.skip = max(0, self.skip - 1)
        elif not self.skip and self._block(tag):
            self.parts.append("\n\n")
            if tag == "pre":
                self.pre = max(0, self.pre - 1)
        if tag == "p" and not self.skip:
            self.in_p = max(0, self.in_p - 1)

    def handle_data(self, data: str) -> None:
        if self.in_title:
            self.title.append(data)
        elif not self.skip:
            self.parts.append(data if self.pre else re.sub(r"\s+", " ", data))


def _parse(html: str, inline_pre: bool = False) -> tuple[str, str]:
    parser = _HtmlText(inline_pre)
    parser.feed(html)
    parser.close()
    text = "".join(parser.parts)
    text = re.sub(r"(?m)^(#{1,6}) +", r"\1 ", text)  # "#  Title" -> "# Title"
    text = re.sub(r"(?m)^#{1,6} *$", "", text)  # an empty heading
    return " ".join("".join(parser.title).split()), text


def tag_text(html: str) -> tuple[str, str]:
    """(title, visible text) by the tag list: script/style/nav/header/footer/aside are dropped."""
    title, text = _parse(html)
    if not title:
        heading = _MD_TITLE.search(text)
        title = heading.group(1).strip() if heading else ""
    return title, text


def _blocks(text: str) -> int:
    return sum(1 for block in text.split("\n\n") if block.strip())


def main_content(html: str) -> str | None:
    """The page's main content as text, by trafilatura; None when it finds no structure (see the module doc)."""
    import trafilatura

    try:
        extracted = trafilatura.extract(
            html, output_format="html", include_formatting=True, include_tables=True, include_comments=False,
            include_links=False, include_images=False, favor_recall=True,
        )  # fmt: skip
    except Exception as exc:  # lxml raises on some tag soup; the tag list still reads it
        logger.debug("trafilatura failed (%s: %s): reading the page by its tags", type(exc).__name__, exc)
        return None
    if not extracted:
        return None
    text = _parse(extracted, inline_pre=True)[1]
    flat = _blocks(text) <= 1 and not re.search(r"<h[1-6]\b", extracted)
    return None if flat or not text.strip() else text


def html_to_text(html: str) -> tuple[str, str]:
    """(title, main-content text) of an HTML page: ``<title>`` (else the first ``<h1>``), trafilatura's main content,
    or, where it finds none, the visible text by the tag list."""
    title, text = tag_text(html)
    content = main_content(html) if _blocks(text) > 1 else None
    return title, text if content is None else content


def read_html(file: SourceFile, errors: list[InputError]) -> list[dict]:
    """The page's main content is one document; ``<title>`` (or the first ``<h1>``) is its title."""
    html = decode_utf8(file, errors)
    if html is None:
        return []
    title, text = html_to_text(html)
    return [document(file, text, title, "html")]
