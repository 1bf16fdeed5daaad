"""The fleet: one playbook for many sites of the portfolio, each site its own ``maintkit run``.

``plan`` turns portfolio entries into per-site command lines, ``process`` runs and watches one,
``pool`` runs many on this machine, ``remote`` and ``tasks`` hand them to Celery workers on Redis.
"""
