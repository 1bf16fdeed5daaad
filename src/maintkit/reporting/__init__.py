"""What people read: the console while a run goes, and reports after it."""
