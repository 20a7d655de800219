"""Typed, versioned result records (:mod:`.schema`), their one writer and reader (:mod:`.io`)."""
from .io import default_path, environment, new_result, read_result, results_dir, write_result
from .schema import (SCHEMA, Distribution, Env, Gpu, Metric, Point, Result, SchemaError, Series, Target,
                     from_dict, json_schema)

__all__ = ["SCHEMA", "Distribution", "Env", "Gpu", "Metric", "Point", "Result", "SchemaError", "Series",
           "Target", "from_dict", "json_schema", "default_path", "environment", "new_result", "read_result",
           "results_dir", "write_result"]
