"""Readers and writers: patterns, CXI, VTK, TIFF stacks, raw detector frames."""
