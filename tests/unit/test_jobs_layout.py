"""The jobs sit below the actions: actions are thin adapters, and every module in actions/ is an action."""

from __future__ import annotations

import subprocess
import sys

from maintkit.actions.base import Action, available_actions, get_action


def test_every_module_in_actions_is_an_action_named_after_it() -> None:
    for name in available_actions():
        action = get_action(name)
        assert isinstance(action, Action), name
        assert action.name == name


def test_the_snapshot_and_restore_jobs_import_no_action_and_no_cli() -> None:
    code = (
        "import sys\n"
        "import maintkit.jobs.snapshot, maintkit.jobs.restore.job, maintkit.jobs.restore.cleanup\n"
        "bad = sorted(m for m in sys.modules if m.startswith(('maintkit.actions', 'maintkit.cli', "
        "'maintkit.engine')))\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""


def test_the_restore_action_hands_its_work_to_the_job() -> None:
    import maintkit.actions.restore as action_module
    import maintkit.actions.snapshot as snapshot_module
    from maintkit.jobs.restore.job import RestoreJob
    from maintkit.jobs.snapshot import SnapshotJob

    assert action_module.RestoreJob is RestoreJob
    assert not hasattr(snapshot_module, "SnapshotJob")
    assert SnapshotJob.__module__ == "maintkit.jobs.snapshot"
