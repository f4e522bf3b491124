"""The main window: building, wiring and shutting down; docks, actions, banner, status bar."""
