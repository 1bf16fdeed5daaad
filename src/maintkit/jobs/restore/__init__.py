"""Restoring a snapshot onto a host, and proving it worked (restore drills).

:mod:`~maintkit.jobs.restore.job` is the restore itself (:class:`RestoreJob`: stage, prove, commit,
or abort), :mod:`~maintkit.jobs.restore.cleanup` empties a drill environment afterwards. The
pieces they use, each small and testable alone:

* :mod:`~maintkit.jobs.restore.stream`: the control-node reader that feeds an artifact to the host,
  checking size and SHA-256 on the fly and holding back the last chunk until both match.
* :mod:`~maintkit.jobs.restore.tarcheck`: refuses unsafe tar members (``..``, absolute paths, links
  leaving the root) while the archive streams, before the host may swap anything in.
* :mod:`~maintkit.jobs.restore.dumprows`: counts the rows a dump holds, per table, as it streams.
* :mod:`~maintkit.jobs.restore.sql` and :mod:`~maintkit.jobs.restore.commands`: the SQL and the host commands
  (staging database, swap, extraction into a sibling folder, swap, cleanup).
* :mod:`~maintkit.jobs.restore.guard`: what counts as production, so a drill or a restore into another
  environment never touches it (inventory rules, and identities resolved on the hosts:
  :mod:`maintkit.sources.identity`).
* :mod:`~maintkit.jobs.restore.source`: where a snapshot is read from when restoring into another
  environment (the source inventory's sites and storage targets, passed as a variable).

The design (what "committed" means, why a staging database) is in ``docs/restore.md``.
"""
