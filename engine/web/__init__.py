"""`evocade serve`: a read-only local web view over the database (Starlette + Jinja2 + uvicorn).

app.py (routes, GET/HEAD only, hosts, headers), views.py (what each page shows), svg.py
(sparklines, score curves, lineage tree), replays.py (GIFs rendered on demand, cached),
templates/ (autoescaped HTML, one stylesheet, no scripts).
"""
