#!/usr/bin/python3
"""The demo page (deploy/web) in a real browser: headless Chromium driven by Selenium.

    page_test.py BASE_URL OUT_DIR

`cargo xtask browser-test` runs this against a stack of its own whose access tokens live a few
seconds with no leeway, so a token expires while the test watches. The test walks the page as a
person would (keyboard for the login forms, clicks for the rest) and checks what the page shows:

  1. the page loads, asks whether there is a session, and logs the answer; the diagram shows the
     issuer, every running replica (learnt from nginx's /cluster routes) and Redis
  2. token login: the access token's three parts decoded, with the countdown
  3. token calls: status and the token replica that answered, in the log and the strip; the
     diagram draws the call through that replica and not to Redis; the comparison table's
     store look-ups per call read 0.00
  4. session login and calls: the session replica; the sid cookie exists, is HttpOnly, and
     document.cookie does not show it; the diagram draws the call on to Redis; the table reads
     1.00
  5. the access token expires while /api/me is polled: 401, automatic refresh, the call retried
     (then screenshots at 1440 and 360 px wide; at 360 px nothing is wider than the screen)
  6. replaying the spent refresh token: 401, the family is revoked, so the next automatic
     refresh fails and the page logs itself out
  7. log in again and log out with the button; log out of the session
  8. the scenes: "a refresh after expiry" (401, refresh, retry), "a replayed refresh token" (the
     family revoked, the owner logged out), "wrong passwords until 429": five failures, then the issuer's 429, drawn through
     the issuer; with prefers-reduced-motion the path is marked at once, with no moving dot; the
     scene "if Redis stops", an illustration said as one, after which Redis is drawn up again
  9. no JavaScript error and no Content-Security-Policy violation in the browser console

Only Debian's packages: /usr/bin/chromium, /usr/bin/chromedriver and python3-selenium. Both
paths are given to Selenium, so it never tries to download a browser or a driver.
"""

import json
import os
import re
import signal
import sys
import time
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
# The whole test, as a bound of its own: on expiry the `finally` below still quits the browser.
TEST_TIMEOUT_SECS = 150
# One wait for the page to show something; an access-token expiry (a few seconds) fits in it.
WAIT_SECS = 20


class Timeout(Exception):
    pass


def main():
    base_url, out_dir = sys.argv[1].rstrip("/"), Path(sys.argv[2])
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "failure.png").unlink(missing_ok=True)
    signal.signal(signal.SIGALRM, lambda *_: raise_(Timeout(f"the test took over {TEST_TIMEOUT_SECS} s")))
    signal.signal(signal.SIGTERM, lambda *_: raise_(Timeout("terminated")))
    signal.alarm(TEST_TIMEOUT_SECS)
    started = time.monotonic()
    driver = start_browser()
    page = Page(driver, base_url)
    try:
        run(page, out_dir)
    except BaseException:
        failure = out_dir / "failure.png"
        driver.save_screenshot(str(failure))
        print(f"\nFAILED at step {page.step!r}. Screenshot: {failure}", file=sys.stderr)
        print("The page's request log:\n" + page.log_text(), file=sys.stderr)
        print("The diagram's last calls:\n" + page.journeys_text(), file=sys.stderr)
        print("Browser console:\n" + json.dumps(page.console, indent=1), file=sys.stderr)
        print(f"browser: {page.passed} passed, 1 failed", file=sys.stderr)
        raise
    finally:
        driver.quit()
    print(f"browser test took {time.monotonic() - started:.1f} s")
    print(f"browser: {page.passed} passed, 0 failed")


def raise_(error):
    raise error


def start_browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in [
        "--headless=new",
        "--no-sandbox",  # as root (CI, containers) Chromium refuses to start with its sandbox
        "--disable-dev-shm-usage",  # containers often have a tiny /dev/shm
        "--window-size=1440,1000",
        "--lang=en-GB",
        "--hide-scrollbars",
    ]:
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)


class Page:
    """The demo page, as the test sees it: named steps, waits, and the request log's entries."""

    def __init__(self, driver, base_url):
        self.driver = driver
        self.base_url = base_url
        self.step = "start"
        self.passed = 0
        self.console = []

    def check(self, name):
        """Starts the step `name`; the previous one passed."""
        if self.step != "start":
            self.passed += 1
            print(f"  ok  {self.step}")
        self.step = name

    def done(self):
        self.check("done")

    def find(self, selector):
        return self.driver.find_element(By.CSS_SELECTOR, selector)

    def text(self, selector):
        return self.find(selector).text

    def click(self, selector):
        self.click_element(self.find(selector))

    def click_element(self, element):
        """Scrolls `element` into view at once, then clicks it. The page scrolls smoothly for
        people (scroll-behavior), and a click during that scroll would land elsewhere."""
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center', behavior: 'instant'});", element)
        element.click()

    def wait_for(self, what, condition, timeout=WAIT_SECS):
        """Waits until condition() returns something truthy, and returns it."""
        try:
            return WebDriverWait(self.driver, timeout, poll_frequency=0.1).until(lambda _: condition())
        except Exception as error:
            raise AssertionError(f"waited {timeout} s for {what}") from error

    def entries(self):
        """The request log, oldest first: one dict per request (its data-* attributes and text)."""
        return self.driver.execute_script(
            """return [...document.querySelectorAll('#log li')].map(
                 (li) => ({...li.dataset, text: li.innerText}));"""
        )

    def wait_for_entry(self, what, after=0, **wanted):
        """The first log entry from index `after` on whose attributes match `wanted`."""

        def matches(entry):
            return all(
                re.fullmatch(value, entry.get(key, "")) if isinstance(value, re.Pattern) else entry.get(key) == value
                for key, value in wanted.items()
            )

        def find():
            for index, entry in enumerate(self.entries()[after:], start=after):
                if matches(entry):
                    return index, entry
            return None

        return self.wait_for(what, find)

    def diagram(self):
        """The diagram's nodes as drawn: {node, kind, on_path} each, node being its data-node."""
        return self.driver.execute_script(
            "return [...document.querySelectorAll('#diagram .node')].map((n) => "
            "({node: n.dataset.node, kind: n.dataset.kind, on_path: n.classList.contains('on-path')}));"
        )

    def diagram_nodes(self, kind):
        """The diagram's nodes of one kind (token, session, issuer, redis...)."""
        return [n["node"] for n in self.diagram() if n["kind"] == kind]

    def on_path(self, node):
        """Whether the last drawn call went through `node`; None if there is no such node."""
        return next((n["on_path"] for n in self.diagram() if n["node"] == node), None)

    def last_stops(self):
        """The parts of the cluster the last drawn call went through, as the diagram marks them."""
        return self.driver.execute_script(
            "const svg = document.querySelector('#diagram svg'); return svg ? svg.dataset.lastStops ?? '' : '';"
        )

    def journeys_text(self):
        try:
            return self.driver.execute_script(
                "return document.querySelector('#journeys').innerText + '\\nlast stops: ' + "
                "(document.querySelector('#diagram svg')?.dataset.lastStops ?? '(no svg)');"
            )
        except Exception as error:  # the page may be gone
            return f"  (unavailable: {error})"

    def log_text(self):
        try:
            return "\n".join(f"  {e['step']:>12} {e['method']} {e['path']} {e['status']} {e['replica']}" for e in self.entries())
        except Exception as error:  # the page may be gone
            return f"  (unavailable: {error})"

    def collect_console(self):
        self.console += self.driver.get_log("browser")

    def set_width(self, width, mobile):
        """Emulates a screen `width` CSS pixels wide; returns the page's full height."""
        self.driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": mobile},
        )
        return self.driver.execute_script("return document.documentElement.scrollHeight")

    def screenshot(self, path, width, mobile=False, height=None):
        """The page `width` CSS pixels wide as a PNG: all of it, or the top `height` pixels as a
        screen of that size shows them."""
        full_height = self.set_width(width, mobile)
        height = height or full_height
        self.driver.execute_script("window.scrollTo({top: 0, behavior: 'instant'});")
        self.driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile},
        )
        time.sleep(0.3)  # one layout and paint at the new size
        self.driver.save_screenshot(str(path))
        print(f"      screenshot {path} ({width} x {height})")

    def reset_width(self):
        self.driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


JWT_REPLICA = re.compile(r"jwt-\d+")
SESSION_REPLICA = re.compile(r"session-\d+")


def run(page, out_dir):
    driver = page.driver

    page.check("the page loads and asks a session replica whether there is a session")
    driver.get(page.base_url + "/")
    assert driver.title.startswith("authscale"), driver.title
    page.wait_for_entry("the page-load probe", kind="session", step="probe", status="401", replica=SESSION_REPLICA)
    page.wait_for("the session status", lambda: page.text("#session-status").startswith("Logged out"))

    page.check("the diagram shows the issuer, the 2 token and 2 session replicas that run, and Redis")
    page.wait_for("the token replicas in the diagram", lambda: sorted(page.diagram_nodes("token")) == ["replica:jwt-1", "replica:jwt-2"])
    assert sorted(page.diagram_nodes("session")) == ["replica:session-1", "replica:session-2"], page.diagram_nodes("session")
    assert len(page.diagram_nodes("issuer")) == 1, page.diagram_nodes("issuer")
    assert page.diagram_nodes("redis") == ["redis"], page.diagram_nodes("redis")
    # The probe sent no cookie: its replica answered 401 without asking Redis, measured.
    page.wait_for("the probe drawn", lambda: re.fullmatch(r"browser nginx replica:session-\d", page.last_stops()))

    page.check("token login by keyboard shows the decoded access token and its countdown")
    password = page.find("#token-login input[name=password]")
    page.click_element(password)
    password.send_keys(Keys.ENTER)  # the form submits on Enter, like any form
    page.wait_for_entry("the token login", kind="token", step="login", path="/auth/login", status="200")
    page.wait_for("the decoded token", lambda: page.find("#token-view").is_displayed())
    header, payload = page.text("#token-header"), page.text("#token-payload")
    for expected in ['"alg": "RS256"', '"typ": "at+jwt"', '"kid": ']:
        assert expected in header, header
    for expected in ['"sub": "bob"', '"roles": ["user","recruiter"]', '"exp": ', "expires:", "the user's roles"]:
        assert expected in payload, payload
    assert "256 bytes" in page.text("#token-signature"), page.text("#token-signature")
    raw = page.find("#token-raw").text.replace("\n", "")
    assert raw.count(".") == 2 and raw.startswith("eyJ"), raw
    assert page.text("#token-countdown").startswith("Expires in"), page.text("#token-countdown")
    assert page.text("#token-status") == "Logged in as bob."

    page.check("token calls show their status and the token replica that answered")
    page.click("#token-me")
    _, me = page.wait_for_entry("GET /api/me", kind="token", path="/api/me", status="200", replica=JWT_REPLICA)
    page.wait_for("the token call drawn", lambda: page.last_stops() == f"browser nginx replica:{me['replica']}")
    assert page.on_path(f"replica:{me['replica']}") is True
    assert page.on_path("redis") is False, "a token call lit Redis"
    assert "Redis not touched" in page.text("#diagram-narration"), page.text("#diagram-narration")
    assert '"auth": "jwt"' in page.text("#token-answer"), page.text("#token-answer")
    page.click("#token-jobs")
    page.wait_for_entry("GET /api/jobs/3/applicants", path="/api/jobs/3/applicants", status="200", replica=JWT_REPLICA)
    page.wait_for("the token strip", lambda: len(page.driver.find_elements(By.CSS_SELECTOR, "#strip-token li")) >= 2)
    for box in page.driver.find_elements(By.CSS_SELECTOR, "#strip-token li"):
        assert JWT_REPLICA.fullmatch(box.get_attribute("data-replica")), box.get_attribute("data-replica")
    assert '"job_id": 3' in page.text("#token-answer"), page.text("#token-answer")
    page.wait_for("the table's token look-ups", lambda: page.text("#lookups-browser-token") == "0.00")
    assert page.text("#lookups-browser-token-detail").startswith("0 in 2 calls"), page.text("#lookups-browser-token-detail")
    page.wait_for("the all-clients token figure", lambda: page.text("#lookups-all-token") == "0.00")

    page.check("session login and calls show the session replica; the cookie is HttpOnly")
    page.click("#session-login button[type=submit]")
    page.wait_for_entry("the session login", kind="session", step="login", status="204")
    page.click("#session-me")
    _, me = page.wait_for_entry("GET /sapi/me", kind="session", step="call", path="/sapi/me", status="200", replica=SESSION_REPLICA)
    page.wait_for("the session call drawn", lambda: page.last_stops() == f"browser nginx replica:{me['replica']} redis")
    assert page.on_path("redis") is True
    page.wait_for("the table's session look-ups", lambda: page.text("#lookups-browser-session") == "1.00")
    page.wait_for("the all-clients session figure", lambda: page.text("#lookups-all-session") == "1.00")
    assert page.text("#session-status") == "Logged in as bob.", page.text("#session-status")
    assert '"auth": "session"' in page.text("#session-answer"), page.text("#session-answer")
    sid = driver.get_cookie("sid")
    assert sid is not None and sid["httpOnly"], sid
    assert driver.execute_script("return document.cookie") == ""
    assert page.text("#cookie-view") == '"" (empty)', page.text("#cookie-view")
    page.wait_for("the session strip", lambda: page.find("#strip-session li").get_attribute("data-replica"))
    assert SESSION_REPLICA.fullmatch(page.find("#strip-session li").get_attribute("data-replica"))

    page.check("the access token expires while polling: 401, automatic refresh, the call retried")
    first_jti = re.search(r'"jti": "([^"]+)"', page.text("#token-payload")).group(1)
    since = len(page.entries())
    page.click("#token-poll")
    page.click("#session-poll")
    expired, entry = page.wait_for_entry(
        "a 401 for the expired token", after=since, kind="token", path="/api/me", status="401", step="poll"
    )
    assert "the token has expired" in entry["text"], entry["text"]
    refreshed, _ = page.wait_for_entry(
        "the automatic refresh", after=expired, step="auto-refresh", path="/auth/refresh", status="200"
    )
    page.wait_for_entry("the retried call", after=refreshed, step="retry", path="/api/me", status="200", replica=JWT_REPLICA)
    page.wait_for("a new access token", lambda: first_jti not in page.text("#token-payload"))
    assert page.find("#token-replay").is_enabled()
    page.wait_for_entry("one more polled call", after=refreshed, step="poll", path="/api/me", status="200")

    page.check("screenshots at 1440 px and 360 px; nothing wider than a 360 px screen")
    page.screenshot(out_dir / "page-1440-screen.png", 1440, height=900)
    page.screenshot(out_dir / "page-1440.png", 1440)
    page.set_width(360, mobile=True)
    overflow = driver.execute_script(
        """return [...document.querySelectorAll('body *')]
             .filter((e) => e.getBoundingClientRect().right > document.documentElement.clientWidth + 1)
             .map((e) => e.tagName + (e.id ? '#' + e.id : '') + '.' + e.className);"""
    )
    assert overflow == [], f"wider than 360 px: {overflow}"
    page.screenshot(out_dir / "page-360-screen.png", 360, mobile=True, height=1400)
    page.screenshot(out_dir / "page-360.png", 360, mobile=True)
    page.reset_width()

    page.check("replaying the spent refresh token revokes the family; the next refresh fails: logged out")
    since = len(page.entries())
    page.click("#token-replay")
    _, replay = page.wait_for_entry("the replay", after=since, step="replay", path="/auth/refresh", status="401")
    assert "Reuse detected" in replay["text"], replay["text"]
    # "The family is revoked" shows until the next automatic refresh fails, which can come at once
    # when the access token expires just then (it lives 5 s): either status will do here.
    page.wait_for(
        "the revoked status",
        lambda: "family is revoked" in page.text("#token-status")
        or page.text("#token-status").startswith("Logged out: the refresh was refused"),
    )
    failed, entry = page.wait_for_entry(
        "the refused automatic refresh", after=since, step="auto-refresh", path="/auth/refresh", status="401"
    )
    assert "invalid_grant" in entry["text"], entry["text"]
    page.wait_for("the logged-out status", lambda: page.text("#token-status").startswith("Logged out: the refresh was refused"))
    assert not page.find("#token-view").is_displayed()
    assert not page.find("#token-logout").is_enabled()

    page.check("log in again, then log out with the button; log out of the session")
    page.click("#token-poll")
    page.click("#session-poll")
    since = len(page.entries())
    page.click("#token-login button[type=submit]")
    page.wait_for_entry("the second token login", after=since, step="login", path="/auth/login", status="200")
    page.wait_for("the logout button", lambda: page.find("#token-logout").is_enabled())
    page.click("#token-logout")
    page.wait_for_entry("the token logout", after=since, step="logout", path="/auth/logout", status="204")
    page.wait_for("the logged-out status", lambda: page.text("#token-status") == "Logged out.")
    page.click("#session-logout")
    page.wait_for_entry("the session logout", after=since, step="logout", path="/auth/session/logout", status="204")
    page.click("#session-me")
    page.wait_for_entry("GET /sapi/me after logout", after=since, step="call", path="/sapi/me", status="401")
    assert driver.get_cookie("sid") is None, driver.get_cookie("sid")

    page.check("the expiry scene: logs in, waits for the 5 s token to expire, then 401, refresh, retry")
    since = len(page.entries())
    page.click("#scene-expiry")
    page.wait_for_entry("the scene's login", after=since, step="login", path="/auth/login", status="200")
    expired, _ = page.wait_for_entry("the expired call", after=since, step="call", path="/api/me", status="401")
    refreshed, _ = page.wait_for_entry("the refresh", after=expired, step="auto-refresh", path="/auth/refresh", status="200")
    page.wait_for_entry("the retried call", after=refreshed, step="retry", path="/api/me", status="200", replica=JWT_REPLICA)
    page.wait_for("the scene's end", lambda: page.text("#scene-status").startswith("Done"))

    page.check("the replay scene: refresh, the spent token again, the family revoked, logged out")
    since = len(page.entries())
    page.click("#scene-replay")
    page.wait_for_entry("the replay", after=since, step="replay", path="/auth/refresh", status="401")
    page.wait_for_entry("the owner's refused refresh", after=since, step="refresh", path="/auth/refresh", status="401")
    page.wait_for("the scene's end", lambda: page.text("#scene-status").startswith("Done"))
    assert page.text("#token-status").startswith("Logged out: the refresh was refused"), page.text("#token-status")

    page.check("the 429 scene: wrong passwords until the issuer refuses; reduced motion draws no dot")
    driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": [{"name": "prefers-reduced-motion", "value": "reduce"}]})
    since = len(page.entries())
    page.click("#scene-429")
    _, refused = page.wait_for_entry("the scene's 429", after=since, step="scene", path="/auth/login", status="429")
    failures = [e for e in page.entries()[since:] if e["step"] == "scene" and e["status"] == "401"]
    assert len(failures) == 5, failures
    page.wait_for("the 429 drawn", lambda: re.fullmatch(r"browser nginx issuer:\S+ redis", page.last_stops()))
    page.wait_for("the 429 said", lambda: page.text("#diagram-narration").endswith("→ 429."))
    assert page.driver.find_elements(By.CSS_SELECTOR, "#diagram .packet") == [], "a dot moves despite reduced motion"
    assert "429 after 5 failures" in page.text("#scene-status"), page.text("#scene-status")
    assert not page.find("#scene-429").is_enabled()

    page.check("the store scene: an illustration, said as such, then Redis drawn as it is again")
    page.click("#scene-store")
    page.wait_for("the illustration's 503 from Redis", lambda: "cannot look the session up" in page.text("#journeys"))
    page.wait_for("the end of the illustration", lambda: "cannot rotate the family" in page.text("#journeys"))
    assert all(line.startswith("Illustration, nothing sent:") for line in page.text("#journeys").splitlines()[:3])
    page.wait_for("Redis drawn up again", lambda: driver.execute_script(
        "return !document.querySelector('#diagram [data-node=redis]').classList.contains('down');"))

    page.check("no JavaScript error and no Content-Security-Policy violation in the console")
    page.collect_console()
    # The 401s, 403s and 429s the page provokes on purpose show up as failed resource loads.
    problems = [
        entry
        for entry in page.console
        if entry["level"] == "SEVERE" and not (entry["source"] == "network" and re.search(r"status of (40[13]|429)", entry["message"]))
    ]
    assert problems == [], problems
    page.done()


if __name__ == "__main__":
    main()
