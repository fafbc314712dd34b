"""The ``qrewrite`` command: one module per subcommand, each parsing its options and calling one function of the
stages below. The only place that imports the package's own modules lazily (a fast ``--help``)."""
