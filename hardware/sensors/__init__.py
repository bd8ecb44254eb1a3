"""Emulated sensors (numpy/scipy only): a 6-axis IMU and a wrist PPG with beat detection."""
