"""``ControlPlaneManager``: the router's pipeline embedded in a Python program."""

from control_plane.manager.manager import ControlPlaneManager
from control_plane.manager.requests import RequestFailed

__all__ = ["ControlPlaneManager", "RequestFailed"]
