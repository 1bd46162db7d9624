"""Sampling: the frozen sample folder protocol (``protocol``), caption jobs, the in-memory generator
and the PNG writer (``sampler``), and the one labelled-grid drawer (``grid``)."""
