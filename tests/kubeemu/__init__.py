"""An emulated Kubernetes API server (kmock-based) and a fake kubelet, for operator tests.

Usage::

    from tests.kubeemu import running_emulator, FakeKubelet

    async with running_emulator() as emu:
        emu.store.register_crd(crd_dict)   # or POST the CRD through the API
        url = str(emu.url)                 # point kopf / kubernetes_asyncio here
"""

from .kubelet import FakeKubelet
from .pods import PodBehaviour, Termination, pod_status, simulator_argv
from .resources import ResourceType, from_crd
from .selectors import Selector, SelectorError
from .server import KubeEmulator, running_emulator
from .store import Store, WatchEvent, merge_patch

__all__ = [
    "FakeKubelet",
    "KubeEmulator",
    "PodBehaviour",
    "ResourceType",
    "Selector",
    "SelectorError",
    "Store",
    "Termination",
    "WatchEvent",
    "from_crd",
    "merge_patch",
    "pod_status",
    "running_emulator",
    "simulator_argv",
]
