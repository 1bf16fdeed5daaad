"""Orchestration that actions call: a snapshot and a restore, each a job object per host.

Why a package of its own: an action is a thin adapter (parameter model, plan, a call into a job,
the mapping of its outcome to an ``ActionResult``), and every module in ``maintkit.actions`` is
taken to be an action. The jobs import nothing above them: they see the step through
:class:`~maintkit.jobs.context.HostContext` and their parameters through small protocols.
"""
