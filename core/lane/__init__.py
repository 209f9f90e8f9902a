"""Where bags come from: a scanner's watched folder, a replayed dataset, the synthetic demo lane,
and threat image projection (TIP) on top of any of them. Qt-free: the GUI polls these from a worker."""
