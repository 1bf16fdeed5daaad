"""Loading and validating what the user wrote: inventories, playbooks, variables, templates."""
