"""The model's text is untrusted input: on the report page (and the admin's job page) it renders inert, whatever
it holds: script, event attributes, javascript: and data: links, raw HTML, images and styles that would load from
elsewhere. Free text goes through a CommonMark renderer and then an allow-list sanitizer; structured values are
escaped. The browser test checks the same in the DOM (tests/ops/test_browser.py)."""

from __future__ import annotations

import json
from html.parser import HTMLParser

import pytest
from django.test import Client

from emulator.server import faults
from jobs.report import markdown_html
from tests.conftest import work_burst

HOSTILE = [
    "<script>document.title = 'pwned'</script>",
    "<img src=x onerror=\"document.title='pwned'\">",
    "[click](javascript:document.title='pwned')",
    "[click](JaVaScRiPt:alert(1))",
    "[data](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "<a href=\"javascript:alert(1)\">raw link</a>",
    "<iframe src=\"https://evil.example\"></iframe>",
    "<style>body{display:none}</style>",
    "![tracker](https://evil.example/pixel.png)",
    "<div onclick=\"alert(1)\">div</div>",
    "<svg><script>alert(1)</script></svg>",
    "<form action=\"https://evil.example\"><input name=q></form>",
    "[link](https://example.com \"title\" onmouseover=alert(1))",
    "<details open ontoggle=alert(1)>x</details>",
]


def elements(markup: str) -> list[tuple[str, dict[str, str]]]:
    """The elements of `markup` with their attributes, as a browser's parser builds them (text stays text)."""
    found: list[tuple[str, dict[str, str]]] = []

    class Collector(HTMLParser):
        def handle_starttag(self, tag, attrs):
            found.append((tag, {name: value or "" for name, value in attrs}))

    Collector().feed(markup)
    return found


def assert_inert(markup: str, allowed_tags: set[str], styled: tuple[str, ...] = ("th", "td")) -> None:
    for tag, attributes in elements(markup):
        assert tag in allowed_tags, (tag, markup)
        assert not [name for name in attributes if name.startswith("on")], (tag, attributes)
        for name in ("href", "src", "action", "formaction", "xlink:href"):
            value = attributes.get(name, "").strip().lower()
            assert not value or value.startswith(("http://", "https://", "mailto:", "#", "/")), (tag, attributes)
        assert "style" not in attributes or tag in styled, (tag, attributes)


MARKDOWN_TAGS = {"p", "br", "hr", "strong", "em", "del", "code", "pre", "blockquote", "ul", "ol", "li", "a",
                 "h1", "h2", "h3", "h4", "h5", "h6", "table", "thead", "tbody", "tr", "th", "td"}


@pytest.mark.parametrize("text", HOSTILE)
def test_free_text_renders_inert(text):
    assert_inert(markdown_html(text), MARKDOWN_TAGS)


def test_markdown_still_renders_as_markdown():
    html = markdown_html("**Bold**, _it_, `code`, [docs](https://example.com)\n\n| a | b |\n|---|---|\n| 1 | 2 |")
    assert "<strong>Bold</strong>" in html and "<em>it</em>" in html and "<code>code</code>" in html
    assert '<a href="https://example.com" rel="noopener noreferrer nofollow">docs</a>' in html
    assert "<table>" in html and "<td>1</td>" in html


@pytest.mark.django_db(transaction=True)
def test_hostile_answers_on_the_report_page_are_text(alice_client, emulator):
    text_answer = "\n\n".join(HOSTILE)
    structured = {"items": [{"task": "<img src=x onerror=alert(1)>", "owner": "<script>alert(2)</script>",
                             "citations": []}]}
    emulator.add_faults([faults.reply(text_answer, "openai", match="Write it up"),
                         faults.reply(json.dumps(structured), "openai", match="List them")])
    schema = {"type": "object", "properties": {"items": {"type": "array", "items": {"type": "object", "properties": {
        "task": {"type": "string"}, "owner": {"type": "string"}, "citations": {"type": "array", "items": {
            "type": "object", "properties": {"turn": {"type": "integer"}, "quote": {"type": "string"}}}}}}}}}
    response = alice_client.post("/api/v1/jobs/analyze", {
        "transcript": "Alice: We ship on Friday.\nBob: I will write the notes.", "provider": "openai",
        "model": "gpt-4o-mini", "tasks": {"notes": "Write it up", "actions": {"prompt": "List them", "schema": schema}}},
        format="json")
    job_id = response.json()["job_id"]
    work_burst()
    document = alice_client.get(f"/api/v1/jobs/{job_id}").json()
    assert document["result"]["results"]["notes"] == text_answer  # stored as the model wrote it
    url = alice_client.post(f"/api/v1/jobs/{job_id}/share").json()["url"]
    page = Client().get(url.removeprefix("http://testserver")).content.decode()
    body = page.split("<body", 1)[1]
    # The page's own elements are these; nothing the model wrote adds one, an attribute that runs, or a link out.
    assert_inert(body, MARKDOWN_TAGS | {"body", "header", "main", "footer", "section", "aside", "nav", "div", "span",
                                        "mark", "time", "b", "small", "figure", "svg", "title", "rect", "text",
                                        "line", "caption", "tfoot"}, styled=("th", "td", "svg"))
    assert "&lt;img src=x onerror=alert(1)&gt;" in page and "&lt;script&gt;alert(2)&lt;/script&gt;" in page
    assert "&lt;script&gt;document.title = 'pwned'&lt;/script&gt;" in page  # shown as the text it is
