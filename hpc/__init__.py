"""The HPC workflow: Parsl drives the autophase CLI on a laptop, on Polaris and on Perlmutter.

This package imports no model and no torch: every heavy stage is a CLI command
(``autophase simulate``, ``autophase train``, …) launched by an MPI launcher that Parsl
composes. The pieces, from the ground up:

``config``      typed, frozen run configuration, loaded strictly from ``jobs/*.toml``
``stages``      the exact command line of each stage (shared by Parsl, batch scripts, dry-run)
``sites``       one Parsl ``Config`` per site, plus each site's launcher lines and batch-script header
``batch``       PBS / Slurm batch scripts per stage and for the whole workflow
``manifest``    validation of a simulated dataset's ``manifest.json``
``rundir``      the run directory: resolved config, logs, outputs, stage stamps, a lock
``workflow``    the graph simulate → validate → train → evaluate → benchmarks → (scaling) → report
``scaling``     strong / weak scaling of a stage over rank or node counts

Entry points are the CLI commands ``autophase workflow``, ``autophase submit`` and
``autophase scaling`` (``autophase/commands/``).
"""
