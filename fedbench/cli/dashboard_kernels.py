"""The kernel manager of `fedbench dashboards`: frees the kernel of a page nobody has open any more.

Every dashboard page Voila serves gets its own kernel (about 235 MB once fedbench and the page are loaded).
Voila shuts a page's kernel down when the browser says the page is going away (`beforeunload`), but a browser
that crashes, is killed, loses the network or discards a background tab never says so, and Jupyter's own
culler measures only idleness, so such kernels piled up for as long as the dashboards ran. This manager adds
a second, short clock: a kernel whose page connected and then went away (no websocket left) is shut down
`closed_timeout` seconds after the last one closed, busy or not (the jobs it watched run on the node, not in
the kernel, and a reloaded page gets a new kernel). A page still open is left alone until it has been idle
for Jupyter's `cull_idle_timeout`. Voila's pre-heated kernels (its pool) are never culled; a kernel taken
from the pool starts its idle clock when it leaves the pool, not when it was heated.
"""

from __future__ import annotations

import datetime
from typing import Any

from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
from traitlets import Integer

__all__ = ["DashboardKernelManager"]


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class DashboardKernelManager(AsyncMappingKernelManager):
    """Jupyter's kernel manager, also shutting down the kernel of a page closed `closed_timeout` seconds ago."""

    closed_timeout = Integer(
        30,
        config=True,
        help="Seconds after the last page of a kernel closed before the kernel is shut down (0: never).",
    )

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._closed_at: dict[str, datetime.datetime] = {}
        self._watched: set[str] = set()

    def notify_connect(self, kernel_id: str) -> None:
        """A page connected to the kernel: it is open again."""
        super().notify_connect(kernel_id)
        self._closed_at.pop(kernel_id, None)

    def notify_disconnect(self, kernel_id: str) -> None:
        """A page's connection closed: when it was the last, start the closed-page clock."""
        super().notify_disconnect(kernel_id)
        if kernel_id in self._kernel_connections and self._kernel_connections[kernel_id] <= 0:
            self._closed_at[kernel_id] = _now()

    async def cull_kernels(self) -> None:
        """One culling round, after forgetting that Voila's pooled kernels were seen before.

        A kernel is first seen while Voila heats it (its pool entry is not ready yet, so Voila does not exempt
        it); forgotten once it waits in the pool, it gets a fresh idle clock when a page takes it, however
        long it waited, instead of being culled as idle before its page has even connected.
        """
        for pool in getattr(self, "_pools", {}).values():
            for entry in pool:
                if entry.done() and not entry.cancelled() and entry.exception() is None:
                    self._watched.discard(entry.result().get("kernel_id"))
        await super().cull_kernels()

    def remove_kernel(self, kernel_id: str) -> Any:
        """Forget the clocks of a kernel that is gone."""
        self._closed_at.pop(kernel_id, None)
        self._watched.discard(kernel_id)
        return super().remove_kernel(kernel_id)

    async def cull_kernel_if_idle(self, kernel_id: str) -> None:
        """Shut the kernel down when its page closed long enough ago, else apply Jupyter's idle rule.

        Voila calls this only for kernels outside its pre-heated pool; the first call for a kernel marks it
        active, so a kernel heated long ago is not culled while its page is still loading.
        """
        kernel = self._kernels.get(kernel_id)
        if kernel is None:
            return
        if kernel_id not in self._watched:
            self._watched.add(kernel_id)
            kernel.last_activity = _now()
            return
        closed_at = self._closed_at.get(kernel_id)
        if (
            closed_at is not None
            and self.closed_timeout > 0
            and self._kernel_connections.get(kernel_id, 0) <= 0
            and (_now() - closed_at).total_seconds() > self.closed_timeout
        ):
            self.log.info(
                "Shutting down kernel %s: its page closed %d seconds ago",
                kernel_id,
                (_now() - closed_at).total_seconds(),
            )
            await self.shutdown_kernel(kernel_id)
            return
        await super().cull_kernel_if_idle(kernel_id)
