"""Text that becomes commands and data: the sandboxed templating and YAML loading with positions.

Why a package of its own, below everything but ``model``: storage, restore and transport render
templates and locate YAML values too, and must not import ``config`` (what the user wrote) for it.
"""
