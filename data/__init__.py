"""Data that ships with the project: the embedded demo benchmark generator (:mod:`data.demo`)."""
