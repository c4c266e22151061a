"""The supervisor console: server-rendered pages over the same read functions as the JSON API.

`ConsolePlugin` (plugin.py) adds it to the Litestar app built by
`services.api.app.create_app`; see docs/adr/0008-supervisor-console.md for why
it is built the way it is.
"""
