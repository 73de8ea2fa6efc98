"""The canonical model: pure, standard library only, no I/O."""
