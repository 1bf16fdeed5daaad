"""The playbooks shipped with maintkit, installed as the package ``maintkit.playbooks`` (see setup.py)."""
