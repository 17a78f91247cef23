"""The AIM API: pydantic models (``v1alpha1``), condition helpers and the CRD generator."""
