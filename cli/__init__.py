"""The tl command line: `tl run`, `tl plugins list`."""
