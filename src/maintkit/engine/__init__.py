"""Running playbooks: batches of hosts, steps with retries and timeouts, rollback, lock, journal."""
