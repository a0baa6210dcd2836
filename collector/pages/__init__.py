"""The public dashboard: server-rendered pages (Jinja2) for people who do not read JSON.

``i18n`` holds the French and English words, ``views`` turns findings into what a page shows
(pure), ``reads`` fetches them (SQL), ``routes`` answers the pages; the templates are in
collector/templates. Every value from a probe reaches the page through Jinja2's autoescaping.
"""
