"""Text contrast on the console's pages meets WCAG 2 AA, measured in the real browser.

Every visible element with its own text is checked: its computed colour against its effective
background (the ancestors' background colours composed over white), 4.5:1 for normal text and
3:1 for large text (24 px, or 18.66 px bold). Disabled controls are exempt, as WCAG allows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.console.browser import ADMIN, Server, needs_chromium, sign_in

pytestmark = [needs_chromium, pytest.mark.slow]

CONTRAST_JS = """() => {
  const parse = (c) => {
    const m = c && c.match(/rgba?\\(([^)]+)\\)/);
    if (!m) return null;
    const p = m[1].split(',').map((s) => parseFloat(s));
    return {r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1};
  };
  const blend = (top, bottom) => ({
    r: top.r * top.a + bottom.r * (1 - top.a), g: top.g * top.a + bottom.g * (1 - top.a),
    b: top.b * top.a + bottom.b * (1 - top.a), a: 1,
  });
  const channel = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
  const lum = (c) => 0.2126 * channel(c.r) + 0.7152 * channel(c.g) + 0.0722 * channel(c.b);
  const background = (el) => {
    const layers = [];
    for (let e = el; e; e = e.parentElement) {
      const c = parse(getComputedStyle(e).backgroundColor);
      if (c && c.a > 0) { layers.push(c); if (c.a >= 1) break; }
    }
    let base = {r: 255, g: 255, b: 255, a: 1};
    for (let i = layers.length - 1; i >= 0; i--) base = blend(layers[i], base);
    return base;
  };
  let checked = 0;
  const failures = [];
  for (const el of document.querySelectorAll('body *')) {
    const ownText = Array.from(el.childNodes).some((n) => n.nodeType === 3 && n.textContent.trim());
    if (!ownText || el.closest(':disabled, [aria-disabled="true"]')) continue;
    const style = getComputedStyle(el);
    const box = el.getBoundingClientRect();
    if (style.visibility === 'hidden' || box.width === 0 || box.height === 0) continue;
    const bg = background(el);
    const fg = blend(parse(style.color) || {r: 0, g: 0, b: 0, a: 1}, bg);
    const [hi, lo] = [lum(fg), lum(bg)].sort((a, b) => b - a);
    const ratio = (hi + 0.05) / (lo + 0.05);
    const size = parseFloat(style.fontSize);
    const large = size >= 24 || (parseInt(style.fontWeight, 10) >= 700 && size >= 18.66);
    checked += 1;
    if (ratio < (large ? 3 : 4.5)) {
      failures.push({text: el.textContent.trim().slice(0, 40), tag: el.tagName,
                     ratio: Math.round(ratio * 100) / 100, color: style.color});
    }
  }
  return {checked, failures};
}"""

PAGES = ("/ui/flags", "/ui/flags/contrast-flag", "/ui/flags/contrast-flag/history",
         "/ui/segments", "/ui/environments", "/ui/tokens", "/ui/sandbox", "/ui/audit",
         "/ui/changes", "/ui/changes/1", "/ui/schedules", "/ui/webhooks", "/ui/webhooks/1")


def test_text_contrast_meets_wcag_aa_on_every_page(
    server: Server, new_page: Callable[[], Any]
) -> None:
    server.api("POST", "/flags", json={
        "key": "contrast-flag", "type": "boolean", "tags": ["web"],
        "environments": {"production": {"enabled": True}},
    })
    # Governed change's pages, each with a status badge: a change request, a pending schedule
    # and a webhook with a queued delivery.
    server.api("POST", "/change-requests", json={
        "flag": "contrast-flag", "environment": "production",
        "patch": {"fallthrough": {"variant": "false"}}, "description": "serve false"})
    past = {"flag": "contrast-flag", "environment": "staging", "action": "enable",
            "at": "2030-01-01T00:00:00Z"}
    server.api("POST", "/schedules", json=past)
    server.api("POST", "/webhooks", json={"url": "https://hooks.example.com/x", "format": "slack"})
    server.api("POST", "/webhooks/1/ping")
    page = new_page()
    page.goto("/ui/login")
    login = page.evaluate(CONTRAST_JS)
    assert login["checked"] >= 3 and login["failures"] == [], login
    sign_in(page, ADMIN)
    for path in PAGES:
        page.goto(path)
        result = page.evaluate(CONTRAST_JS)
        assert result["checked"] >= 5, (path, result)
        assert result["failures"] == [], (path, result["failures"])


def test_the_check_catches_faint_text(server: Server, new_page: Callable[[], Any]) -> None:
    page = new_page()
    page.goto("/ui/login")
    # Through the CSSOM: the console's CSP (rightly) ignores inline style attributes.
    page.evaluate("""() => {
        const p = document.createElement('p');
        p.textContent = 'faint words';
        Object.assign(p.style, {color: '#bbbbbb', background: '#ffffff', fontSize: '14px'});
        document.body.appendChild(p);
    }""")
    result = page.evaluate(CONTRAST_JS)
    assert [f["text"] for f in result["failures"]] == ["faint words"]
