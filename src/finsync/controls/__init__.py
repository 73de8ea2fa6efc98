"""Two-person controls: changes that take effect only once a second principal approves."""
