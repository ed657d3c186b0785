"""The backend service: socket loop, job queue, one worker thread, results on disk.

from videoscene_backend.service import start_in_thread
handle = start_in_thread(output_dir)          # binds tcp://127.0.0.1:<free port>
... BackendClient(handle.address) ...
handle.stop()
"""

from .server import BackendService, ServiceHandle, start_in_thread

__all__ = ["BackendService", "ServiceHandle", "start_in_thread"]
