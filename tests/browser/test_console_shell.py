"""The console's shell in chromium: log-in with a token, a refused token, the navigation a
role's scopes allow, log-out, and the session cookie the page's script cannot read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.browserkit import RENDER_TIMEOUT_MS, Site, logged_in, shot


def test_log_in_refused_then_accepted_then_out(browser: Any, site: Site, shots: Path) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(site.url + "/")
    page.wait_for_selector('main[data-rendered="login"]', timeout=RENDER_TIMEOUT_MS)
    shot(page, shots, "login")
    page.fill("#login-token", "fsk_" + "x" * 43)
    page.click("#login-form button[type=submit]")
    page.wait_for_function("() => document.getElementById('login-error').textContent",
                           timeout=RENDER_TIMEOUT_MS)
    assert "unknown API token" in page.inner_text("#login-error")
    page.fill("#login-token", site.tokens["auditor"])
    page.click("#login-form button[type=submit]")
    page.wait_for_selector('main[data-rendered="overview"]', timeout=RENDER_TIMEOUT_MS)
    assert "auditor" in page.inner_text("#who-name")
    # The session cookie is HttpOnly: the page's own script cannot read it.
    assert "finsync_session" not in page.evaluate("document.cookie")
    cookie = next(c for c in context.cookies() if c["name"] == "finsync_session")
    assert (cookie["httpOnly"], cookie["sameSite"]) == (True, "Strict")
    page.click("#logout")
    page.wait_for_selector('main[data-rendered="login"]', timeout=RENDER_TIMEOUT_MS)
    page.reload()
    page.wait_for_selector('main[data-rendered="login"]', timeout=RENDER_TIMEOUT_MS)
    context.close()


def test_every_page_is_listed_for_a_reader(browser: Any, site: Site) -> None:
    page = logged_in(browser, site, "revenue.accountant")
    titles = page.locator("nav a").all_inner_texts()
    assert titles == ["Overview", "Exceptions", "Reconciliation", "Contract timeline",
                      "Revenue", "AR", "Quote to cash", "Close"]
    page.context.close()
