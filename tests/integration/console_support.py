"""Shared by the console tests: logging in through the form, reading pages, and the page checks
(bytes under budget, every field labelled) that the browser tests repeat on a real `ledger run`."""
from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

PAGE_BUDGET = 100 * 1024          # HTML + its CSS + its JS, in bytes
CSRF = re.compile(r'name="_csrf_token" value="([0-9a-f]+)"')


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "no CSRF token in the page"
    return found.group(1)


async def login(client: Any, token: str, next_url: str = "/console/") -> Any:
    form = await client.get("/console/login")
    return await client.post("/console/login", data={"token": token, "next": next_url,
                                                     "_csrf_token": csrf_of(form.text)})


class PageParts(HTMLParser):
    """The fields, labels and linked assets of one page."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: list[dict[str, str | None]] = []
        self.label_for: set[str] = set()
        self.assets: list[str] = []
        self._open_labels = 0
        self.text: list[str] = []                      # what a reader sees
        self.attributes: list[str] = []                # every attribute value except link targets

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.attributes += [v or "" for k, v in attrs if k not in ("href", "action")]
        if tag == "label":
            self._open_labels += 1
            if a.get("for"):
                self.label_for.add(a["for"] or "")
        elif tag in ("input", "select", "textarea") and a.get("type") not in ("hidden", "submit", "button"):
            self.fields.append({**a, "_wrapped": "yes" if self._open_labels else None})
        elif tag == "link" and a.get("rel") == "stylesheet":
            self.assets.append(a["href"] or "")
        elif tag == "script" and a.get("src"):
            self.assets.append(a["src"] or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "label":
            self._open_labels -= 1

    def unlabelled(self) -> list[str]:
        return [str(f.get("name") or f.get("id")) for f in self.fields
                if not (f.get("_wrapped") or f.get("aria-label") or (f.get("id") in self.label_for))]


def shows(html: str, secret: str) -> bool:
    """Whether `secret` is on the page other than inside a link's address (psn_no is in URLs by contract)."""
    parts = parts_of(html)
    return secret in "".join(parts.text) or any(secret in v for v in parts.attributes)


def parts_of(html: str) -> PageParts:
    parser = PageParts()
    parser.feed(html)
    return parser
