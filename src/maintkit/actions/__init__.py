"""One module per action; see :mod:`maintkit.actions.base` for the contract."""
