"""Headless Chromium for the page's tests: Debian's chromium and chromium-driver
(provision/packages.sh) driven by Selenium, and a small driver of the page itself.

Selenium is pointed at both binaries, so it never tries to download a browser or driver.
"""
import os

import pytest
from selenium import webdriver
from selenium.common.exceptions import WebDriverException

from tests.browser.page_driver import WINDOW, Page

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


@pytest.fixture(scope="session")
def chromium():
    """One headless Chromium for the session (a new tab state per test: see `page`)."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]
    if missing:
        pytest.fail(f"{', '.join(missing)} missing: `make setup` (provision/packages.sh) "
                    "installs Debian's chromium and chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    # --no-sandbox: the tests run as root, where Chromium's sandbox refuses to start.
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-extensions",
                     "--disable-dev-shm-usage", "--no-first-run", "--disable-background-networking",
                     f"--window-size={WINDOW[0]},{WINDOW[1]}"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options,
                              service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture
def page(chromium):
    """`page(base_url)` -> a Page opened on it. Left on about:blank afterwards, so no
    refresh loop of one test runs into the next."""
    opened = []

    def open_page(url):
        view = Page(chromium, url.rstrip("/") + "/")
        view.open()
        opened.append(view)
        return view

    yield open_page
    try:
        chromium.set_window_size(*WINDOW)
        chromium.get("about:blank")
    except WebDriverException:
        pass
