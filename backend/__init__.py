"""VideoScene GPU backend (import name: videoscene_backend)."""

from .pipeline.image_limits import configure_opencv_limits

configure_opencv_limits()  # before anything imports cv2: OpenCV reads the limits at load time
