"""NoPoSplat, the seed's learned pose-free prior (checkpoint discovery; the network is pending)."""

# The network itself is not in this release: select_prior falls back to the stereo prior in
# `auto` mode and names the reason; asking for `noposplat` explicitly is a NOT_IMPLEMENTED error.
NETWORK_AVAILABLE = False
