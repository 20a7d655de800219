"""autophase: AutoPhaseNN and iterative phase retrieval for 3D Bragg CDI, with an HPC workflow."""
__version__ = "0.1.0"
