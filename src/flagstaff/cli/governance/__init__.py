"""``flagstaff changes|schedules|webhooks|policy|triggers``: governed change from the terminal
(docs/governance.md)."""
