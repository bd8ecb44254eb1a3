"""The deployable bundle: the contract `convert` writes and `edge_runtime` reads, owned by neither.

Pure file format and its checks (manifest schema, file names, hashes, Ed25519 signature); it
imports neither TensorFlow nor the edge runtime.
"""
