"""A driver of the page in headless Chromium: reads what it shows through its ids and
data- attributes (each cell's data-value is the number or text the API gave); and the
page's files checked over plain HTTP."""
import base64
import http.client
import os
import re
import shutil
import time
from pathlib import Path

import pytest
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By

from harness.browser import CHROMEDRIVER, CHROMIUM, start_chromium  # noqa: F401

WAIT_S = 20.0
"""A page refreshes every 5 s: two refreshes and a drain fit in this with room to spare."""
POLL_S = 0.1
SCREENSHOT_VAR = "PAGE_SCREENSHOT"
"""If set, the screenshot the burst test takes is also written to this path (the README's
docs/page.png is made with PAGE_SCREENSHOT=docs/page.png)."""

# Reads a table of the page in one call: {symbol: {field: data-value}} for each body row.
_READ_TABLE = """
const rows = {};
for (const row of document.querySelectorAll(`#${arguments[0]} tbody tr[data-symbol]`)) {
  const fields = {};
  for (const cell of row.cells) fields[cell.dataset.field] = cell.dataset.value;
  rows[row.dataset.symbol] = fields;
}
return rows;
"""


class Page:
    """The page in the browser, read through its ids and data- attributes."""

    def __init__(self, driver, url):
        self.driver = driver
        self.url = url

    def open(self):
        self.driver.get(self.url)
        # Loaded and drawn once: the status line leaves "loading".
        self.wait(lambda: self.text("status") and self.state() != "loading", "the first refresh")
        return self

    def wait(self, condition, what, timeout=WAIT_S):
        """Poll `condition()` until it is true; fail with the page's state otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            value = condition()
            if value:
                return value
            if time.monotonic() > deadline:
                pytest.fail(f"page: {what}: not within {timeout} s; status {self.text('status')!r}, "
                            f"banner {self.text('banner')!r}, range error "
                            f"{self.text('range-error')!r}; console {self.console()}")
            time.sleep(POLL_S)

    def element(self, element_id):
        return self.driver.find_element(By.ID, element_id)

    def text(self, element_id):
        return self.element(element_id).text

    def state(self):
        return self.element("status").get_attribute("data-state")

    def visible(self, element_id):
        return self.element(element_id).is_displayed()

    def table(self, table_id):
        return self.driver.execute_script(_READ_TABLE, table_id)

    def pipeline(self):
        """{label: data-value or text} of the pipeline figures."""
        return self.driver.execute_script("""
            const out = {};
            for (const dd of document.querySelectorAll('#pipeline-figures dd'))
              out[dd.dataset.field] = dd.dataset.value !== undefined ? dd.dataset.value : dd.textContent;
            return out;""")

    def pick_range(self, lower, upper):
        for element_id, value in (("range-lower", lower), ("range-upper", upper)):
            box = self.element(element_id)
            box.clear()
            box.send_keys(value)
        self.element("range-show").click()

    def console(self):
        try:
            return [entry["message"] for entry in self.driver.get_log("browser")][-5:]
        except WebDriverException:
            return []

    def screenshot(self, path):
        """The whole page as a PNG at `path` (and at $PAGE_SCREENSHOT if set)."""
        size = self.driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
        shot = self.driver.execute_cdp_cmd("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}})
        Path(path).write_bytes(base64.b64decode(shot["data"]))
        target = os.environ.get(SCREENSHOT_VAR)
        if target:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
        return path


def as_table(rows):
    """API dashboard dicts -> what Page.table reads for them ({symbol: {field: text}})."""
    return {row["symbol"]: {"symbol": row["symbol"], "count": str(row["count"]),
                            "followups": str(row["followups"]),
                            "earliest": row["earliest"] or "", "latest": row["latest"] or ""}
            for row in rows}


def without(table, *fields):
    return {symbol: {k: v for k, v in row.items() if k not in fields}
            for symbol, row in table.items()}


def raw_get(url, path):
    """(status, headers {lowercase name: value}, body bytes)."""
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def check_page_files(url):
    """`/` and the files it names: right types, the HTML revalidated, the rest kept."""
    status, headers, html = raw_get(url, "/")
    assert status == 200 and headers["content-type"] == "text/html; charset=utf-8", headers
    assert headers["cache-control"] == "no-cache"
    assert "default-src 'self'" in headers["content-security-policy"]
    assets = re.findall(r'(?:href|src)="(page/[a-z.]+\?v=[0-9a-f]+)"', html.decode())
    assert sorted(name.split("?")[0] for name in assets) == ["page/page.css", "page/page.js"]
    for asset in assets:
        status, headers, body = raw_get(url, "/" + asset)
        kind = "text/css" if ".css" in asset else "text/javascript"
        assert status == 200 and headers["content-type"] == f"{kind}; charset=utf-8", headers
        assert headers["cache-control"] == "public, max-age=31536000, immutable"
        assert int(headers["content-length"]) == len(body) > 0
    # Without the current hash a file is not kept, and an unknown file is the API's 404.
    assert raw_get(url, "/page/page.js")[1]["cache-control"] == "no-cache"
    status, headers, body = raw_get(url, "/page/nothing.js")
    assert status == 404 and headers["content-type"] == "application/json", (status, body)
