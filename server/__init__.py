"""The symbol API: a Flask app, its DataInterface port and the backends behind it."""
