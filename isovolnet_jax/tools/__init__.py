"""Commands built on the library: sweeps and the reports on their results.

Nothing outside tools/ and bench/ imports these (tests/test_layout.py checks
it). Commands, `python -m isovolnet_jax.tools.NAME --help`: sweep (one
training run per point of a sweep file; sweep_report writes its tables and
plots after every point), zoo_plot (the zoo's
accuracy vs parameters and time), export_folder (a tfds dataset as an image
folder), rewrite_results (the one-off rewrite of results/ into the form that
travels between machines).
"""
