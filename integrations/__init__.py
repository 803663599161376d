"""Adapters registering the Pose-NDF prior in host pipelines; installed as
``posendf_plugin.integrations``. Nothing in the core package imports from here."""
