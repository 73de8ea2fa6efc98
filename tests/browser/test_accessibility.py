"""Every page at both widths: each control has a label, each button and link a name, the
amounts right-aligned; and the keyboard alone reaches the navigation (a skip link first)."""

from __future__ import annotations

from typing import Any

from tests.browserkit import WIDTHS, Site, logged_in, open_page

PAGES = ("overview", "exceptions", "approvals", "recon", "timeline", "revenue", "ar",
         "quote-to-cash", "close")
# The controls a page has that no label names, and buttons or links without a name.
_UNNAMED = """() => {
  const named = (el) => (el.labels && el.labels.length) || el.getAttribute('aria-label')
    || el.getAttribute('aria-labelledby') || el.type === 'hidden' || el.type === 'submit';
  const controls = [...document.querySelectorAll('input, select, textarea')]
    .filter((el) => !named(el)).map((el) => el.outerHTML.slice(0, 80));
  const buttons = [...document.querySelectorAll('button, a')]
    .filter((el) => el.getClientRects().length && !(el.textContent || '').trim()
            && !el.getAttribute('aria-label') && !el.getAttribute('title'))
    .map((el) => el.outerHTML.slice(0, 120));
  return [...controls, ...buttons];
}"""
# Table cells of amounts (a currency code after digits) that are not right-aligned.
_LEFT_AMOUNTS = """() => [...document.querySelectorAll('td')]
  .filter((td) => /^-?[0-9][0-9,]*(\\.[0-9]+)? [A-Z]{3}$/.test(td.innerText.trim()))
  .filter((td) => getComputedStyle(td).textAlign !== 'right')
  .map((td) => td.innerText)"""


def test_every_control_is_labelled_and_amounts_align_right(browser: Any, site: Site) -> None:
    page = logged_in(browser, site, "controller")
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        for name in PAGES:
            open_page(page, name)
            assert page.evaluate(_UNNAMED) == [], (name, width)
            assert page.evaluate(_LEFT_AMOUNTS) == [], (name, width)
    page.context.close()


def test_the_keyboard_reaches_the_navigation(browser: Any, site: Site) -> None:
    page = logged_in(browser, site, "auditor")
    page.reload()  # a fresh page: the keyboard starts at its top
    page.wait_for_selector('main[data-rendered="overview"]')
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip"
    reached = []
    for _ in range(12):
        page.keyboard.press("Tab")
        reached.append(page.evaluate("document.activeElement.innerText"))
    assert {"Overview", "Exceptions", "Reconciliation", "Revenue", "AR", "Close"} <= set(reached)
    page.keyboard.press("Enter")  # the focused link opens its page
    page.wait_for_function("() => document.getElementById('page').dataset.rendered")
    page.context.close()
