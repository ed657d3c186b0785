"""VideoScene wire protocol and client (import name: videoscene_protocol).

Standard library + numpy + pyzmq only: this package is vendored into the Blender add-on.
Use relative imports inside it so it works wherever it is vendored.
"""

PROTOCOL_VERSION = "1.3"
