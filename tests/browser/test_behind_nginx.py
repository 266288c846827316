"""The page as `make run` serves it: through the project's nginx (provision/
nginx.conf.template) in front of gunicorn on a unix socket. nginx passes `/`, the page's
files and /dashboard/overview through with gunicorn's types and cache headers."""
from urllib.parse import quote

from tests.browser.page_driver import as_table, check_page_files, without
from tests.workers import Load, get_json, symbol_dashboards


def test_the_page_behind_nginx(proxied_api, redis, database, page):
    api = proxied_api("redis", workers=2)
    with Load(api.url, threads=2, conversations=120) as load:
        load.join()
    assert set(load.statuses) == {200}, load.statuses
    check_page_files(api.url)
    status, body = get_json(api.url, "/dashboard/overview")
    assert status == 200 and body["pipeline"]["applies"] is True, body

    view = page(api.url)
    boards = symbol_dashboards(lambda path: get_json(api.url, path))
    view.wait(lambda: without(view.table("symbols-table"), "rate", "accuracy")
              == as_table(boards.values()), "the symbol table through nginx")
    assert view.state() == "fresh" and not view.visible("banner")

    # The picker's request goes through nginx too, space and all; its 400 is the API's.
    lower, upper = "2024-05-02 00:00:00", "2024-05-01 00:00:00"
    status, answer = get_json(api.url, f"/dashboard/range/{quote(lower)}/{quote(upper)}")
    assert status == 400, answer
    assert get_json(api.url, f"/dashboard/overview?lower={quote(lower)}&upper={quote(upper)}") \
        == (status, answer)
    view.pick_range(lower, upper)
    view.wait(lambda: answer["error"] in view.text("range-error"), "the API's 400 through nginx")
