"""The symbol API (SPEC section 2): four routes over a pluggable DataInterface.

Only the `data_interface = ...` assignment below may change; the backend is chosen
from OG_BACKEND by the composition root.
"""
from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

from server import validation
from server.bootstrap import build_data_interface
from server.data_interface import Conflict, NotFound, Unavailable

data_interface = build_data_interface()

app = Flask(__name__)
app.config["MAX_CONTENT_LENGTH"] = 1024
app.url_map.merge_slashes = False  # '//' is a 404 JSON error, not a redirect to HTML
app.json.sort_keys = False

_STATUS = {validation.BadRequest: 400, NotFound: 404, Conflict: 409, Unavailable: 503}


def _error(message, status):
    return jsonify(error=message), status


@app.errorhandler(validation.BadRequest)
@app.errorhandler(NotFound)
@app.errorhandler(Conflict)
@app.errorhandler(Unavailable)
def _known_error(error):
    return _error(str(error), _STATUS[type(error)])


@app.errorhandler(HTTPException)
def _http_error(error):
    # 404 for unknown routes, 405, and 413 for a body over MAX_CONTENT_LENGTH.
    if error.code == 413:
        return _error("request body larger than 1 KiB", 413)
    return _error(error.description, error.code)


@app.errorhandler(Exception)
def _unexpected(error):
    app.logger.exception("unexpected error")
    return _error("internal error", 500)


def _body():
    return validation.parse_body(request.get_data(cache=False))


@app.post("/initial")
def initial():
    uuid, symbol = validation.parse_initial(_body())
    vowel = data_interface.initial(uuid, symbol)
    return jsonify(uuid=uuid, symbol=symbol, vowel=bool(vowel))


@app.post("/followup")
def followup():
    uuid = validation.parse_uuid(_body())
    data_interface.followup(uuid)
    return jsonify(uuid=uuid, followup=True)


@app.get("/dashboard/symbol/<symbol>")
def dashboard_symbol(symbol):
    return jsonify(data_interface.dashboard_symbol(validation.parse_symbol(symbol)))


@app.get("/dashboard/range/<lower>/<upper>")
def dashboard_range(lower, upper):
    return jsonify(data_interface.dashboard_range(*validation.parse_range(lower, upper)))
