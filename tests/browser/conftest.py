"""Headless Chromium for the page's tests: Debian's chromium and chromium-driver
(provision/packages.sh) under Selenium, one per session, and the page opened in it
(tests/browser/page_driver.py)."""
import os

import pytest
from selenium.common.exceptions import WebDriverException

from tests.browser.page_driver import CHROMEDRIVER, CHROMIUM, Page, start_chromium


@pytest.fixture(scope="session")
def chromium():
    """One headless Chromium for the session (a new tab state per test: see `page`)."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]
    if missing:
        pytest.fail(f"{', '.join(missing)} missing: `make setup` (provision/packages.sh) "
                    "installs Debian's chromium and chromium-driver")
    driver = start_chromium()
    yield driver
    driver.quit()


@pytest.fixture
def page(chromium):
    """`page(base_url)` -> a Page opened on it. Left on about:blank afterwards, so no
    refresh loop of one test runs into the next."""
    def open_page(url):
        return Page(chromium, url.rstrip("/") + "/").open()

    yield open_page
    try:
        chromium.get("about:blank")
    except WebDriverException:
        pass
