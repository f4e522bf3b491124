"""The GUI's state layer: QtCore only, no widgets, no pyqtgraph."""
