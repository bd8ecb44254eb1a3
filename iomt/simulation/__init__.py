"""`iomt simulate`: a federated fleet end to end on one machine, with real processes and MQTT."""
