"""One profile per CMS (``magento``, ``wordpress``, ``prestashop``, and ``none``), and their registry.

See :mod:`maintkit.cms.base` and ``docs/cms.md``; a new CMS is one module in this package.
"""
