"""The learning loop: shadow scoring, drift watch, label-next and the learning admin pages. May use every other package; none imports it."""
