"""A small tree of the DOM Chromium dumps, to read tables, texts and attributes in tests."""

from __future__ import annotations

import dataclasses
import html.parser
from collections.abc import Iterator

VOID = frozenset("area base br col embed hr img input link meta source track wbr".split())


@dataclasses.dataclass
class Node:
    tag: str
    attrs: dict[str, str | None]
    children: list[Node | str] = dataclasses.field(default_factory=list)

    def text(self) -> str:
        """The text of the node and its descendants, as textContent gives it."""
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def walk(self) -> Iterator[Node]:
        yield self
        for child in self.children:
            if isinstance(child, Node):
                yield from child.walk()

    def find(self, tag: str | None = None, cls: str | None = None) -> list[Node]:
        """Every descendant with this tag and (among its classes) this class."""
        return [
            n
            for n in self.walk()
            if (tag is None or n.tag == tag)
            and (cls is None or cls in (n.attrs.get("class") or "").split())
        ]

    def by_id(self, id_: str) -> Node:
        [found] = [n for n in self.walk() if n.attrs.get("id") == id_]
        return found

    def rows(self) -> list[list[str]]:
        """The texts of the cells of each row of this table's body, whitespace collapsed."""
        [body] = self.find("tbody")
        return [[" ".join(td.text().split()) for td in tr.find("td")] for tr in body.find("tr")]


class _Builder(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, dict(attrs))
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def parse(markup: str) -> Node:
    builder = _Builder()
    builder.feed(markup)
    builder.close()
    return builder.root
