"""NoPoSplat, the seed's learned pose-free prior: its network, checkpoint loading and PnP pose."""
