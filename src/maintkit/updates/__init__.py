"""Updates: releases on the host, composer locks, promotable records, audits (DESIGN.md "Updates").

The actions (``release``, ``composer``, ``audit``, ``magento``, ``wp``, ``prestashop``,
``maintenance``, ``promotable``) are thin: they parse parameters and call these modules, which the
CLI (``maintkit releases``, ``maintkit rollback``) reuses, so the same code reads a release history
whether a playbook step or an engineer at a terminal asks.
"""
