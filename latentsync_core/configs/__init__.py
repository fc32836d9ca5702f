"""Typed configuration: the YAML/JSON files under ``configs/`` loaded into validated
dataclasses (``loader.py``), one module per kind of file."""
