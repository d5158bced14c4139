"""Named experiments (presets) and the reports and plots they produce."""
