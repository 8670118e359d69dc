"""``headstart lab``: the race as a live local web app.

A view of a race folder's store plus a job queue: ``session`` (the folder, its data and settings, run
lookups), ``jobs`` (one worker, persisted queue, cancel, restart recovery), ``events`` (live updates to
every open page), ``architecture`` (the strip and the trainable-parameter pill) and ``app`` (the
Starlette application). The web stack is the optional ``lab`` extra; nothing here imports it until
``create_app`` is called.
"""
