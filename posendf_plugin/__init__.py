"""posendf-plugin: Pose-NDF, a learned distance field over SMPL body poses, as a pose prior.

Quaternions are ``(w, x, y, z)`` everywhere (see :mod:`posendf_plugin.rotations`).
"""
__version__ = "0.1.0"
